//! Unit tests of the whole redactor: each family's positives and look-alike negatives,
//! overlap priority, evasions, custom patterns and parts.

use super::*;

fn all() -> Redactor {
    Redactor::new(None, &[], None).unwrap()
}

fn found(r: &Redactor, text: &str) -> Vec<(String, String)> {
    r.scan(text)
        .iter()
        .map(|s| {
            (
                r.family_name(s.family).to_string(),
                text[s.start..s.end].to_string(),
            )
        })
        .collect()
}

fn one(text: &str, family: &str, secret: &str) {
    let r = all();
    let got = found(&r, text);
    assert_eq!(
        got,
        vec![(family.to_string(), secret.to_string())],
        "in {text:?}"
    );
}

fn none(text: &str) {
    let r = all();
    let got = found(&r, text);
    assert!(got.is_empty(), "in {text:?}: {got:?}");
}

#[test]
fn personal_data_positives() {
    one(
        "mail john.doe+x@example.co.uk now",
        "EMAIL",
        "john.doe+x@example.co.uk",
    );
    one("call +1 (415) 555-2671 today", "PHONE", "+1 (415) 555-2671");
    one("call +14155552671.", "PHONE", "+14155552671");
    one("call (415) 555-2671", "PHONE", "(415) 555-2671");
    one("call 415-555-2671 x", "PHONE", "415-555-2671");
    one("ring 020 7946 0958 please", "PHONE", "020 7946 0958");
    one("ring +44 20 7946 0958", "PHONE", "+44 20 7946 0958");
    one(
        "card 4111 1111 1111 1111 exp",
        "CREDIT_CARD",
        "4111 1111 1111 1111",
    );
    one(
        "card 4111-1111-1111-1111",
        "CREDIT_CARD",
        "4111-1111-1111-1111",
    );
    one("amex 378282246310005", "CREDIT_CARD", "378282246310005");
    one(
        "iban GB82 WEST 1234 5698 7654 32.",
        "IBAN",
        "GB82 WEST 1234 5698 7654 32",
    );
    one(
        "iban DE89370400440532013000",
        "IBAN",
        "DE89370400440532013000",
    );
    one("ssn 123-45-6789", "US_SSN", "123-45-6789");
    one("host 192.168.1.20:8080", "IPV4", "192.168.1.20");
    one(
        "v6 2001:db8:85a3::8a2e:370:7334 here",
        "IPV6",
        "2001:db8:85a3::8a2e:370:7334",
    );
    one(
        "v6 fe80::1ff:fe23:4567:890a.",
        "IPV6",
        "fe80::1ff:fe23:4567:890a",
    );
}

#[test]
fn personal_data_negatives() {
    none("order 4111111111111112 shipped");
    none("id 550e8400-e29b-41d4-a716-446655440000");
    none("commit 3f786850e387550fdab836ed7e6dc881de23001b");
    none("ssn 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000");
    none("version 1.2.3 and v10.4.1.2 released 2024-01-15 12:30:45");
    none("at 2024-01-15T12:30:45.123Z");
    none("std::vector<int> a; x[1::2]; 12:30:45");
    none("mac 00:1A:2B:3C:4D:5E");
    none("999.1.1.1 and 1.2.3.4.5");
    none("@decorator and user@localhost");
    none("GB82WEST12345698765433");
}

#[test]
fn keys_positives() {
    let openai = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj";
    one(&format!("key={openai}"), "OPENAI_KEY", openai);
    let legacy = "sk-Ab3dEf6hIj9kLm2nOp5qRs8tT3BlbkFJUv1wXy4zAb3dEf6h";
    one(&format!("use {legacy}"), "OPENAI_KEY", legacy);
    let ant = "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2nOp5qRs8t-AA";
    one(&format!("'{ant}'"), "ANTHROPIC_KEY", ant);
    one(
        "AKIAIOSFODNN7EXAMPLE,",
        "AWS_ACCESS_KEY",
        "AKIAIOSFODNN7EXAMPLE",
    );
    let gh = "ghp_aB3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d";
    one(&format!("token {gh}"), "GITHUB_TOKEN", gh);
    let pat = "github_pat_11ABCDEFG0123456789abc_defghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456";
    one(pat, "GITHUB_TOKEN", pat);
    let xox = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    one(&format!("slack {xox}"), "SLACK_TOKEN", xox);
    let hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
    one(&format!("post to {hook} now"), "SLACK_WEBHOOK", hook);
    let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    one(&format!("stripe {stripe}"), "STRIPE_KEY", stripe);
    let google = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q";
    one(&format!("g {google}"), "GOOGLE_API_KEY", google);
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    one(&format!("Authorization: Bearer {jwt}"), "JWT", jwt);
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1b2C3d4E5f6G7h8\nI9j0K1l2M3n4O5p6Q==\n-----END RSA PRIVATE KEY-----";
    one(&format!("key:\n{pem}\nthanks"), "PRIVATE_KEY", pem);
    one(
        "password = \"Xk9#mQ2!vL7p\"",
        "GENERIC_SECRET",
        "Xk9#mQ2!vL7p",
    );
    one(
        "{\"client_secret\": \"a8F3kLm29QzX0pW7\"}",
        "GENERIC_SECRET",
        "a8F3kLm29QzX0pW7",
    );
    one("DB_PASSWORD=Tr0ub4dor&3x", "GENERIC_SECRET", "Tr0ub4dor&3x");
}

#[test]
fn keys_negatives() {
    none("we use sk-learn and the task-based sk-8 approach, sk-proj-docs too");
    none("AKIA is a prefix; AKIAIOSFODNN7EXAMPL is short; Asia is a place");
    none("ghp_short and github_pat_example");
    none("password = ********");
    none("password: <your-password>");
    none("token = ${API_TOKEN}");
    none("api_key = os.environ['OPENAI_API_KEY']");
    none("secret_key = settings.SECRET_KEY");
    none("token_count: 12345678");
    none("password == other_password");
    none("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----");
    none("eyJust a word. eyJ.x.y");
}

#[test]
fn prefixed_key_beats_generic_assignment() {
    let r = all();
    let key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj";
    let got = found(&r, &format!("OPENAI_API_KEY=\"{key}\""));
    assert_eq!(got, vec![("OPENAI_KEY".to_string(), key.to_string())]);
}

#[test]
fn evasions_are_undone_and_spans_map_back() {
    let r = all();
    let text = "mail john\\u0040example.com";
    assert_eq!(
        found(&r, text),
        vec![("EMAIL".into(), "john\\u0040example.com".into())]
    );
    let text = "card 4\u{200B}111 1111 1111 1111";
    assert_eq!(found(&r, text)[0].0, "CREDIT_CARD");
    let text = "ssn \u{FF11}\u{FF12}\u{FF13}-45-6789";
    assert_eq!(
        found(&r, text),
        vec![("US_SSN".into(), "\u{FF11}\u{FF12}\u{FF13}-45-6789".into())]
    );
    let red = r.redact(text, &Modes::default());
    assert_eq!(red.text, "ssn [REDACTED:US_SSN]");
}

#[test]
fn families_filter_custom_patterns_and_errors() {
    let r = Redactor::new(
        Some(&["email".to_string()]),
        &[("EMPLOYEE_ID".into(), r"EMP-\d{6}".into())],
        Some("s"),
    )
    .unwrap();
    assert_eq!(r.enabled(), vec!["EMAIL", "EMPLOYEE_ID"]);
    let red = r.redact(
        "a@b.co EMP-123456 4111111111111111",
        &r.modes([("EMPLOYEE_ID", "hash")]).unwrap(),
    );
    assert!(red
        .text
        .starts_with("[REDACTED:EMAIL] [REDACTED:EMPLOYEE_ID:"));
    assert!(red.text.ends_with("] 4111111111111111"));
    assert_eq!(red.count, 2);
    let bad = Redactor::new(None, &[("X".into(), "(".into())], None);
    assert!(matches!(bad, Err(CoreError::Config { rule, .. }) if rule.contains("X")));
    assert!(Redactor::new(Some(&["NOPE".into()]), &[], None).is_err());
    assert!(r.modes([("EMAIL", "shred")]).is_err());
}

#[test]
fn parts_catch_a_secret_split_between_them() {
    let r = all();
    let parts = [
        "my key is sk-proj-Ab3dEf6hIj9kLm2n",
        "Op5qRs8tUv1wXy4zAb3d and more",
    ];
    let out = r.redact_parts(&parts, &Modes::default());
    assert_eq!(out[0].text, "my key is [REDACTED:OPENAI_KEY]");
    assert_eq!(out[1].text, " and more");
    assert_eq!(out[0].count + out[1].count, 1);
}

#[test]
fn many_unclosed_pem_headers_stay_linear() {
    let r = all();
    let text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nnot base64 here\n"
        .repeat(20_000);
    let t = std::time::Instant::now();
    let spans = r.scan(&text);
    assert_eq!(spans.len(), 20_000);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
}
