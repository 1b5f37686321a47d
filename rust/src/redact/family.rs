//! The built-in detector families: their public names and the priority that decides
//! which detection wins when two overlap (specific, prefixed secrets before generic ones).

/// A built-in family. The discriminant is the family id used in spans; custom patterns
/// get ids after the built-ins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Family {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    SlackWebhook,
    OpenaiKey,
    AnthropicKey,
    StripeKey,
    GoogleApiKey,
    Jwt,
    PrivateKey,
    GenericSecret,
}

/// Every built-in family, in id order.
pub const ALL: [Family; 18] = [
    Family::Email,
    Family::Phone,
    Family::CreditCard,
    Family::Iban,
    Family::UsSsn,
    Family::Ipv4,
    Family::Ipv6,
    Family::AwsAccessKey,
    Family::GithubToken,
    Family::SlackToken,
    Family::SlackWebhook,
    Family::OpenaiKey,
    Family::AnthropicKey,
    Family::StripeKey,
    Family::GoogleApiKey,
    Family::Jwt,
    Family::PrivateKey,
    Family::GenericSecret,
];

/// Rank of user-defined patterns: after the prefixed secrets, before personal data.
pub const CUSTOM_RANK: u8 = 10;

impl Family {
    /// The family id carried by spans.
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// The public, upper-case name (`[REDACTED:<NAME>]`).
    pub const fn name(self) -> &'static str {
        match self {
            Family::Email => "EMAIL",
            Family::Phone => "PHONE",
            Family::CreditCard => "CREDIT_CARD",
            Family::Iban => "IBAN",
            Family::UsSsn => "US_SSN",
            Family::Ipv4 => "IPV4",
            Family::Ipv6 => "IPV6",
            Family::AwsAccessKey => "AWS_ACCESS_KEY",
            Family::GithubToken => "GITHUB_TOKEN",
            Family::SlackToken => "SLACK_TOKEN",
            Family::SlackWebhook => "SLACK_WEBHOOK",
            Family::OpenaiKey => "OPENAI_KEY",
            Family::AnthropicKey => "ANTHROPIC_KEY",
            Family::StripeKey => "STRIPE_KEY",
            Family::GoogleApiKey => "GOOGLE_API_KEY",
            Family::Jwt => "JWT",
            Family::PrivateKey => "PRIVATE_KEY",
            Family::GenericSecret => "GENERIC_SECRET",
        }
    }

    /// Overlap priority: lower wins. A PEM block beats everything inside it, a prefixed
    /// key beats the generic `token=` rule that surrounds it, and so on.
    pub const fn rank(self) -> u8 {
        match self {
            Family::PrivateKey => 0,
            Family::Jwt => 1,
            Family::SlackWebhook => 2,
            Family::AnthropicKey => 3,
            Family::OpenaiKey => 4,
            Family::GithubToken => 5,
            Family::StripeKey => 6,
            Family::SlackToken => 7,
            Family::AwsAccessKey => 8,
            Family::GoogleApiKey => 9,
            Family::Email => 11,
            Family::Iban => 12,
            Family::CreditCard => 13,
            Family::UsSsn => 14,
            Family::Ipv6 => 15,
            Family::Ipv4 => 16,
            Family::Phone => 17,
            Family::GenericSecret => 18,
        }
    }

    /// Looks a family up by its public name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Family> {
        ALL.iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_table_and_names_round_trip() {
        for (i, f) in ALL.iter().enumerate() {
            assert_eq!(f.id() as usize, i);
            assert_eq!(Family::from_name(f.name()), Some(*f));
            assert_eq!(Family::from_name(&f.name().to_lowercase()), Some(*f));
        }
        assert_eq!(Family::from_name("NOPE"), None);
    }

    #[test]
    fn ranks_are_distinct() {
        let mut ranks: Vec<u8> = ALL.iter().map(|f| f.rank()).collect();
        ranks.push(CUSTOM_RANK);
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), ALL.len() + 1);
    }
}
