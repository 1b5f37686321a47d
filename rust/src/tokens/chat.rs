//! Whole-request prompt tokens of a chat body (OpenAI chat completions, with the common
//! Anthropic and Responses-API shapes tolerated), from parsed JSON.
//!
//! Rules (OpenAI cookbook, "How to count tokens with tiktoken"):
//! - every message costs 3 tokens, plus the tokens of each string field (`role`,
//!   `content`, `tool_call_id`, …); a `name` costs its tokens plus 1; the reply primer
//!   `<|start|>assistant<|message|>` adds 3 once;
//! - tool definitions: per function `func_init` (7 on o200k, 10 on cl100k) plus the
//!   tokens of `name:description` (one trailing `.` dropped); if it has properties,
//!   3 once plus, per property, 3 and the tokens of `key:type:description`; an `enum`
//!   adds -3 once and 3 plus the item's tokens per item; 12 once after all functions.
//!   Nested `properties` (objects, array `items`) are counted by the same rule;
//! - tool calls made by the assistant: 3 plus the tokens of the function name and its
//!   argument text per call (id and type are not shown to the model);
//! - content parts: text is counted, images by `super::image`, audio and file payloads
//!   count 0 (their size is not known from the request), any other part (or odd shape)
//!   counts as its JSON text. Nothing here fails except a `messages` that is not a list.

use serde_json::{Map, Value};

use super::image::{image_size_from_base64, image_size_from_data_url, Detail, ImageRule};
use super::{Counter, Encoding};
use crate::CoreError;

const PER_MESSAGE: usize = 3;
const PER_NAME: usize = 1;
const REPLY_PRIMER: usize = 3;
const PER_TOOL_CALL: usize = 3;
const PROP_INIT: isize = 3;
const PROP_KEY: isize = 3;
const ENUM_INIT: isize = -3;
const ENUM_ITEM: isize = 3;
const FUNC_END: isize = 12;
/// Nested schemas deeper than this are counted as JSON text.
const MAX_SCHEMA_DEPTH: usize = 16;

/// The parts of a request's prompt-token count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCount {
    /// Text and framing tokens in the counter's base encoding (before any estimate).
    pub text: usize,
    /// Image tokens (already in the model's own units).
    pub images: usize,
}

struct Ctx {
    enc: Encoding,
    rule: ImageRule,
    text: isize,
    images: usize,
}

impl Ctx {
    fn new(counter: Counter, model: &str) -> Ctx {
        Ctx {
            enc: counter.encoding(),
            rule: ImageRule::for_model(model),
            text: 0,
            images: 0,
        }
    }

    fn add(&mut self, n: usize) {
        self.text += n as isize;
    }

    fn str(&mut self, s: &str) {
        self.add(self.enc.count(s));
    }

    /// A value shown to the model as text: strings as they are, the rest as JSON.
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::String(s) => self.str(s),
            other => self.str(&other.to_string()),
        }
    }

    fn message(&mut self, msg: &Value) {
        self.add(PER_MESSAGE);
        let Value::Object(map) = msg else {
            self.value(msg);
            return;
        };
        for (key, v) in map {
            match key.as_str() {
                "content" => self.content(v),
                "name" => {
                    self.value(v);
                    self.add(PER_NAME);
                }
                "tool_calls" => match v {
                    Value::Array(calls) => calls.iter().for_each(|c| self.tool_call(c)),
                    other => self.value(other),
                },
                "function_call" => self.tool_call(v),
                _ => self.value(v),
            }
        }
    }

    fn tool_call(&mut self, call: &Value) {
        let f = call.get("function").unwrap_or(call);
        if !f.is_object() {
            self.value(call);
            return;
        }
        self.add(PER_TOOL_CALL);
        if let Some(name) = f.get("name") {
            self.value(name);
        }
        if let Some(args) = f.get("arguments").or_else(|| f.get("input")) {
            self.value(args);
        }
    }

    fn content(&mut self, content: &Value) {
        match content {
            Value::Array(parts) => parts.iter().for_each(|p| self.part(p)),
            other => self.value(other),
        }
    }

    fn part(&mut self, part: &Value) {
        let Value::Object(map) = part else {
            self.value(part);
            return;
        };
        let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" | "input_text" | "output_text" if map.contains_key("text") => {
                self.value(&map["text"]);
            }
            "refusal" if map.contains_key("refusal") => self.value(&map["refusal"]),
            "image_url" | "input_image" => self.openai_image(map),
            "image" => self.source_image(map),
            "tool_use" => self.tool_call(part),
            "tool_result" => {
                if let Some(c) = map.get("content") {
                    self.content(c);
                }
            }
            "input_audio" | "audio" | "file" | "input_file" | "document" => {}
            _ => self.value(part),
        }
    }

    /// `{"type": "image_url", "image_url": {"url", "detail"} | "url"}` or the Responses
    /// API's `{"type": "input_image", "image_url": "url", "detail"}`.
    fn openai_image(&mut self, map: &Map<String, Value>) {
        let inner = map.get("image_url");
        let (url, detail) = match inner {
            Some(Value::Object(o)) => (o.get("url"), o.get("detail")),
            Some(v) => (Some(v), map.get("detail")),
            None => (None, map.get("detail")),
        };
        let size = url
            .and_then(Value::as_str)
            .and_then(image_size_from_data_url);
        let detail = Detail::parse(detail.and_then(Value::as_str));
        self.images += self.rule.tokens(size, detail);
    }

    /// Anthropic's `{"type": "image", "source": {"type": "base64", "data"} | {"url"}}`.
    fn source_image(&mut self, map: &Map<String, Value>) {
        let source = map.get("source");
        let size = source.and_then(|s| {
            if let Some(data) = s.get("data").and_then(Value::as_str) {
                image_size_from_base64(data)
            } else {
                s.get("url")
                    .and_then(Value::as_str)
                    .and_then(image_size_from_data_url)
            }
        });
        self.images += self.rule.tokens(size, Detail::Auto);
    }

    fn tools(&mut self, tools: &Value) {
        let Value::Array(list) = tools else {
            self.value(tools);
            return;
        };
        let func_init: isize = match self.enc {
            Encoding::O200kBase => 7,
            Encoding::Cl100kBase => 10,
        };
        let mut functions = 0;
        for tool in list {
            // Chat: {"type": "function", "function": {...}}; Responses API and
            // Anthropic: the function fields sit on the tool itself.
            let f = tool.get("function").unwrap_or(tool);
            let Some(f) = f.as_object().filter(|f| f.contains_key("name")) else {
                self.value(tool);
                continue;
            };
            functions += 1;
            self.text += func_init;
            let name = f.get("name").and_then(Value::as_str).unwrap_or("");
            let desc = f.get("description").and_then(Value::as_str).unwrap_or("");
            self.str(&format!("{name}:{}", trim_dot(desc)));
            let params = f.get("parameters").or_else(|| f.get("input_schema"));
            if let Some(params) = params {
                self.schema_properties(params, 0);
            }
        }
        if functions > 0 {
            self.text += FUNC_END;
        }
    }

    fn schema_properties(&mut self, schema: &Value, depth: usize) {
        let Some(Value::Object(props)) = schema.get("properties") else {
            return;
        };
        if props.is_empty() {
            return;
        }
        if depth >= MAX_SCHEMA_DEPTH {
            self.value(&Value::Object(props.clone()));
            return;
        }
        self.text += PROP_INIT;
        for (key, prop) in props {
            self.text += PROP_KEY;
            let ty = match prop.get("type") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(types)) => types
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            };
            let desc = prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(Value::Array(items)) = prop.get("enum") {
                self.text += ENUM_INIT;
                for item in items {
                    self.text += ENUM_ITEM;
                    self.value(item);
                }
            }
            self.str(&format!("{key}:{ty}:{}", trim_dot(desc)));
            self.schema_properties(prop, depth + 1);
            if let Some(items) = prop.get("items") {
                self.schema_properties(items, depth + 1);
            }
        }
    }

    fn finish(self) -> MessageCount {
        MessageCount {
            text: self.text.max(0) as usize,
            images: self.images,
        }
    }
}

fn trim_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

/// Counts `messages` (and `tools`) as `model` would see them, in the parts before the
/// estimate factor is applied.
pub fn count_message_parts(
    model: &str,
    messages: &Value,
    tools: Option<&Value>,
) -> Result<MessageCount, CoreError> {
    let Value::Array(list) = messages else {
        return Err(CoreError::Input("messages must be a list".into()));
    };
    let counter = Counter::for_model(model);
    let mut ctx = Ctx::new(counter, model);
    list.iter().for_each(|m| ctx.message(m));
    ctx.add(REPLY_PRIMER);
    if let Some(tools) = tools.filter(|t| !t.is_null()) {
        ctx.tools(tools);
    }
    Ok(ctx.finish())
}

/// Prompt tokens of `messages` (+ `tools`) for `model`; fails only when `messages` is
/// not a JSON array.
pub fn count_messages(
    model: &str,
    messages: &Value,
    tools: Option<&Value>,
) -> Result<usize, CoreError> {
    let parts = count_message_parts(model, messages, tools)?;
    Ok(Counter::for_model(model).scale(parts.text) + parts.images)
}

/// Prompt tokens of a raw chat request body: `messages`, `tools` (or the legacy
/// `functions`), an Anthropic top-level `system`, and a structured-output schema
/// (`response_format.json_schema`, counted as its JSON text).
pub fn count_chat_body(model: &str, body: &[u8]) -> Result<usize, CoreError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| CoreError::Input(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(map) = body else {
        return Err(CoreError::Input(
            "request body must be a JSON object".into(),
        ));
    };
    let empty = Value::Null;
    let messages = map.get("messages").unwrap_or(&empty);
    let legacy_tools;
    let tools = match (map.get("tools"), map.get("functions")) {
        (Some(t), _) if !t.is_null() => Some(t),
        (_, Some(Value::Array(fs))) => {
            legacy_tools = Value::Array(fs.clone());
            Some(&legacy_tools)
        }
        _ => None,
    };
    let counter = Counter::for_model(model);
    let mut parts = count_message_parts(model, messages, tools)?;
    let mut extra = Ctx::new(counter, model);
    if let Some(system) = map.get("system").filter(|s| !s.is_null()) {
        extra.add(PER_MESSAGE);
        extra.content(system);
    }
    if let Some(schema) = map
        .get("response_format")
        .and_then(|r| r.get("json_schema"))
    {
        extra.value(schema);
    }
    let extra = extra.finish();
    parts.text += extra.text;
    parts.images += extra.images;
    Ok(counter.scale(parts.text) + parts.images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cookbook_messages() -> Value {
        json!([
            {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
            {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
            {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
            {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
            {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
            {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
        ])
    }

    fn cookbook_tools() -> (Value, Value) {
        let tools = json!([{
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                        "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["location"],
                },
            },
        }]);
        let messages = json!([
            {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
            {"role": "user", "content": "What's the weather like in San Francisco?"},
        ]);
        (tools, messages)
    }

    #[test]
    fn cookbook_chat_examples() {
        // The counts OpenAI's API reported for the cookbook's example conversation.
        let m = cookbook_messages();
        assert_eq!(count_messages("gpt-3.5-turbo", &m, None).unwrap(), 129);
        assert_eq!(count_messages("gpt-4-0613", &m, None).unwrap(), 129);
        assert_eq!(count_messages("gpt-4o", &m, None).unwrap(), 124);
        assert_eq!(count_messages("gpt-4o-mini", &m, None).unwrap(), 124);
    }

    #[test]
    fn cookbook_tool_examples() {
        let (tools, m) = cookbook_tools();
        assert_eq!(
            count_messages("gpt-3.5-turbo", &m, Some(&tools)).unwrap(),
            105
        );
        assert_eq!(count_messages("gpt-4", &m, Some(&tools)).unwrap(), 105);
        assert_eq!(count_messages("gpt-4o", &m, Some(&tools)).unwrap(), 101);
        assert_eq!(
            count_messages("gpt-4o-mini", &m, Some(&tools)).unwrap(),
            101
        );
    }

    #[test]
    fn body_matches_parsed() {
        let (tools, m) = cookbook_tools();
        let body = json!({"model": "gpt-4o", "messages": m, "tools": tools});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(count_chat_body("gpt-4o", &bytes).unwrap(), 101);
        let legacy = json!({"messages": m, "functions": [tools[0]["function"]]});
        let bytes = serde_json::to_vec(&legacy).unwrap();
        assert_eq!(count_chat_body("gpt-4o", &bytes).unwrap(), 101);
    }

    #[test]
    fn bad_inputs() {
        assert!(count_messages("gpt-4o", &json!({"role": "user"}), None).is_err());
        assert!(count_messages("gpt-4o", &json!("hi"), None).is_err());
        assert!(count_chat_body("gpt-4o", b"{not json").is_err());
        assert!(count_chat_body("gpt-4o", b"[]").is_err());
        assert!(count_chat_body("gpt-4o", b"{\"messages\": 3}").is_err());
        assert_eq!(count_messages("gpt-4o", &json!([]), None).unwrap(), 3);
        // Odd shapes are counted, never rejected.
        let odd = json!([
            1, null, "plain", {"role": 7, "content": {"a": [1, 2]}},
            {"role": "user", "content": [null, 5, {"type": "mystery", "x": 1},
                {"type": "image_url"}, {"type": "image_url", "image_url": 3},
                {"type": "text"}, {"type": "input_audio", "input_audio": {"data": "AAAA"}}]},
            {"role": "assistant", "tool_calls": [null, {"function": 5}, {"function": {}}]},
            {"role": "assistant", "tool_calls": "x", "function_call": {"name": "f", "arguments": {"a": 1}}},
        ]);
        let tools = json!([null, 3, {"type": "function"}, {"function": {"name": "f", "parameters": {"properties": {"a": 5, "b": {"type": ["string", "null"], "enum": [1, null]}}}}}]);
        assert!(count_messages("gpt-4o", &odd, Some(&tools)).unwrap() > 0);
        assert!(count_messages("claude-3-haiku", &odd, Some(&json!("tools"))).unwrap() > 0);
    }

    #[test]
    fn images_and_estimates() {
        let m = json!([{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        ]}]);
        let text_only = json!([{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}]}]);
        let base = count_messages("gpt-4o", &text_only, None).unwrap();
        assert_eq!(count_messages("gpt-4o", &m, None).unwrap(), base + 85);
        let claude_text = count_message_parts("claude-3-opus", &text_only, None).unwrap();
        assert_eq!(
            count_messages("claude-3-opus", &m, None).unwrap(),
            Counter::Estimate(super::super::Family::Anthropic).scale(claude_text.text) + 1600
        );
    }

    #[test]
    fn tool_calls_and_names() {
        let m = json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]);
        let enc = Encoding::O200kBase;
        let expected = 3
            + enc.count("assistant")
            + 3
            + enc.count("get_weather")
            + enc.count("{\"city\":\"Paris\"}")
            + 3
            + enc.count("tool")
            + enc.count("call_1")
            + enc.count("sunny")
            + 3;
        assert_eq!(count_messages("gpt-4o", &m, None).unwrap(), expected);
    }
}
