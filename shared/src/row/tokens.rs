//! A row as the serde calls that serialise it, recorded once and owned: what the Storage Write
//! path carries from the handler to the batch instead of JSON text, so that the Arrow columns are
//! filled straight from the row's values ([`super::arrow`]) and no row is written as JSON only to
//! be parsed again (that re-parse was most of the Storage Write path's extra CPU; BENCHMARKS.md).
//!
//! The recording is the same [`Serialize`] impl `insertAll`'s JSON comes from, so both methods
//! carry the same values by construction, and [`RowTokens`] serialises back to byte-identical
//! JSON (`shared/tests/rows.rs` holds both to it, with a proptest). [`RowTokens::json_len`] is that
//! JSON's exact length without writing it, so the row size rule ([`super::EventRow::encode`]) is
//! the same for both forms.

use std::fmt;

use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use crate::google::bigquery::{json_escape_extra, json_string_len};

/// serde_json's marker for a [`RawValue`]: it serialises as a struct of this name with one field
/// of this name holding its JSON text.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// One serde call. Strings live in the recording's text, named by a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token {
    /// An object (a struct or a map): key and value pairs follow, then [`Token::End`].
    Object,
    /// A struct field's name.
    Field(&'static str),
    /// A map key.
    Key(Span),
    End,
    /// An array: its items follow, then [`Token::SeqEnd`].
    Seq,
    SeqEnd,
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Span),
    /// A [`RawValue`]'s JSON text (a JSON column's string literal, written once by the row).
    Raw(Span),
}

/// Where a string is in the recording's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    len: usize,
}

/// A recorded row: its tokens and the text their strings point into.
#[derive(Debug, Clone)]
pub struct RowTokens {
    tokens: Vec<Token>,
    text: String,
    /// [`RowTokens::json_len`], counted once when recorded.
    json_len: usize,
}

/// Why a value could not be recorded (a type JSON has no form for).
#[derive(Debug)]
pub struct RecordError(String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

impl ser::Error for RecordError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl RowTokens {
    /// Records how `value` serialises.
    pub fn record(value: &impl Serialize) -> Result<Self, RecordError> {
        let mut tokens = RowTokens {
            tokens: Vec::with_capacity(64),
            text: String::with_capacity(1024),
            json_len: 0,
        };
        value.serialize(&mut tokens)?;
        tokens.json_len = tokens.count_json_len();
        Ok(tokens)
    }

    /// The tokens, in serialisation order.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The string a span names.
    pub fn str(&self, span: Span) -> &str {
        &self.text[span.start..span.start + span.len]
    }

    /// The length of the compact JSON this serialises to (`serde_json::to_string`), exact,
    /// without writing it.
    pub fn json_len(&self) -> usize {
        self.json_len
    }

    fn count_json_len(&self) -> usize {
        // Per open container: has it had an entry yet (a comma goes before every later one)?
        let mut started: Vec<bool> = Vec::with_capacity(8);
        let mut len = 0;
        let mut after_key = false;
        // The strings' escapes are counted over the text at once, a run between raw values at a
        // time (a raw value is written as it is): one pass over a few long runs instead of a
        // call per string. Every byte of the text is in exactly one string or raw value, in order.
        let mut escaped = 0;
        let mut counted_to = 0;
        for token in &self.tokens {
            let value = !matches!(token, Token::End | Token::SeqEnd);
            let key = matches!(token, Token::Field(_) | Token::Key(_));
            if value
                && !after_key
                && let Some(started) = started.last_mut()
            {
                if *started {
                    len += 1; // ,
                }
                *started = true;
            }
            after_key = key;
            len += match *token {
                Token::Object | Token::Seq => {
                    started.push(false);
                    1
                }
                Token::End | Token::SeqEnd => {
                    started.pop();
                    1
                }
                Token::Field(name) => json_string_len(name) + 1,
                Token::Key(span) => span.len + 3, // "…":
                Token::Null => 4,
                Token::Bool(b) => 4 + usize::from(!b),
                Token::I64(n) => itoa::Buffer::new().format(n).len(),
                Token::U64(n) => itoa::Buffer::new().format(n).len(),
                Token::F64(f) => serde_json::to_string(&f).map_or(4, |s| s.len()),
                Token::Str(span) => span.len + 2,
                Token::Raw(span) => {
                    escaped += json_escape_extra(&self.text.as_bytes()[counted_to..span.start]);
                    counted_to = span.start + span.len;
                    span.len
                }
            };
        }
        escaped += json_escape_extra(&self.text.as_bytes()[counted_to..]);
        len + escaped
    }

    /// The whole row as a tree of values, from the first token.
    pub fn root(&self) -> Node<'_> {
        Node { row: self, at: 0 }
    }

    /// The value whose first token is `at`.
    pub fn node(&self, at: usize) -> Node<'_> {
        Node { row: self, at }
    }

    fn push_str(&mut self, s: &str) -> Span {
        let span = Span {
            start: self.text.len(),
            len: s.len(),
        };
        self.text.push_str(s);
        span
    }
}

/// One recorded value: the token it starts at.
#[derive(Debug, Clone, Copy)]
pub struct Node<'r> {
    row: &'r RowTokens,
    at: usize,
}

impl<'r> Node<'r> {
    /// Its first token (`Null` past the end of the recording).
    pub fn token(&self) -> Token {
        self.row.tokens.get(self.at).copied().unwrap_or(Token::Null)
    }

    /// Where its first token is in the recording.
    pub fn index(&self) -> usize {
        self.at
    }

    /// The recording it is part of.
    pub fn row(&self) -> &'r RowTokens {
        self.row
    }

    /// The index of the token after this value.
    pub fn end(&self) -> usize {
        let tokens = &self.row.tokens;
        let mut depth = 0usize;
        let mut i = self.at;
        loop {
            match tokens.get(i) {
                Some(Token::Object | Token::Seq) => depth += 1,
                Some(Token::End | Token::SeqEnd) => depth = depth.saturating_sub(1),
                None => return i,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                return i;
            }
        }
    }

    /// An object's entries: each key and its value.
    pub fn entries(&self) -> impl Iterator<Item = (&'r str, Node<'r>)> + 'r {
        let row = self.row;
        let mut i = self.at + 1;
        std::iter::from_fn(move || {
            let key = match row.tokens.get(i)? {
                Token::Field(name) => *name,
                Token::Key(span) => row.str(*span),
                _ => return None,
            };
            let value = Node { row, at: i + 1 };
            i = value.end();
            Some((key, value))
        })
    }

    /// An array's items.
    pub fn items(&self) -> impl Iterator<Item = Node<'r>> + 'r {
        let row = self.row;
        let mut i = self.at + 1;
        std::iter::from_fn(move || {
            if matches!(row.tokens.get(i)?, Token::SeqEnd) {
                return None;
            }
            let item = Node { row, at: i };
            i = item.end();
            Some(item)
        })
    }
}

/// Serialises the recording again: the same calls, so serde_json writes the same bytes.
impl Serialize for RowTokens {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.root().serialize(serializer)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.token() {
            Token::Object => {
                let mut map = serializer.serialize_map(None)?;
                for (key, value) in self.entries() {
                    map.serialize_entry(key, &value)?;
                }
                map.end()
            }
            Token::Seq => {
                let mut seq = serializer.serialize_seq(None)?;
                for item in self.items() {
                    seq.serialize_element(&item)?;
                }
                seq.end()
            }
            Token::Null => serializer.serialize_unit(),
            Token::Bool(b) => serializer.serialize_bool(b),
            Token::I64(n) => serializer.serialize_i64(n),
            Token::U64(n) => serializer.serialize_u64(n),
            Token::F64(f) => serializer.serialize_f64(f),
            Token::Str(span) => serializer.serialize_str(self.row.str(span)),
            Token::Raw(span) => {
                let raw: &RawValue =
                    serde_json::from_str(self.row.str(span)).map_err(ser::Error::custom)?;
                raw.serialize(serializer)
            }
            other => Err(ser::Error::custom(format!(
                "a recording has {other:?} where a value starts"
            ))),
        }
    }
}

/// Serializer methods that widen their number and record it as the wider one.
macro_rules! widen {
    ($($($name:ident($t:ty)),+ => $to:ident;)+) => {
        $($(
            fn $name(self, v: $t) -> Result<(), RecordError> {
                self.$to(v.into())
            }
        )+)+
    };
}

impl<'a> Serializer for &'a mut RowTokens {
    type Ok = ();
    type Error = RecordError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Variant<'a>;
    type SerializeMap = Self;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Variant<'a>;

    // The narrower numbers as the widest of their kind, as serde_json writes them.
    widen! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32) => serialize_i64;
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32) => serialize_u64;
        serialize_f32(f32) => serialize_f64;
    }

    fn serialize_bool(self, v: bool) -> Result<(), RecordError> {
        self.tokens.push(Token::Bool(v));
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), RecordError> {
        self.tokens.push(Token::I64(v));
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), RecordError> {
        self.tokens.push(Token::U64(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), RecordError> {
        // serde_json writes a number that is not finite as null.
        self.tokens.push(if v.is_finite() {
            Token::F64(v)
        } else {
            Token::Null
        });
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), RecordError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), RecordError> {
        let span = self.push_str(v);
        self.tokens.push(Token::Str(span));
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), RecordError> {
        // As serde_json: an array of numbers.
        self.tokens.push(Token::Seq);
        self.tokens
            .extend(v.iter().map(|&b| Token::U64(u64::from(b))));
        self.tokens.push(Token::SeqEnd);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), RecordError> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), RecordError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), RecordError> {
        self.tokens.push(Token::Null);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), RecordError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), RecordError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        self.tokens.push(Token::Object);
        self.tokens.push(Token::Field(variant));
        value.serialize(&mut *self)?;
        self.tokens.push(Token::End);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, RecordError> {
        self.tokens.push(Token::Seq);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, RecordError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, RecordError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Variant<'a>, RecordError> {
        self.tokens.push(Token::Object);
        self.tokens.push(Token::Field(variant));
        self.tokens.push(Token::Seq);
        Ok(Variant { row: self })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, RecordError> {
        self.tokens.push(Token::Object);
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Struct<'a>, RecordError> {
        let raw = name == RAW_VALUE_TOKEN;
        if !raw {
            self.tokens.push(Token::Object);
        }
        Ok(Struct { row: self, raw })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Variant<'a>, RecordError> {
        self.tokens.push(Token::Object);
        self.tokens.push(Token::Field(variant));
        self.tokens.push(Token::Object);
        Ok(Variant { row: self })
    }
}

impl SerializeSeq for &mut RowTokens {
    type Ok = ();
    type Error = RecordError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), RecordError> {
        self.tokens.push(Token::SeqEnd);
        Ok(())
    }
}

impl ser::SerializeTuple for &mut RowTokens {
    type Ok = ();
    type Error = RecordError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), RecordError> {
        SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for &mut RowTokens {
    type Ok = ();
    type Error = RecordError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), RecordError> {
        SerializeSeq::end(self)
    }
}

impl SerializeMap for &mut RowTokens {
    type Ok = ();
    type Error = RecordError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), RecordError> {
        // A key is a string, as serde_json's (which also takes numbers and writes them quoted;
        // no row has such a key).
        let at = self.tokens.len();
        key.serialize(&mut **self)?;
        match self.tokens[at..] {
            [Token::Str(span)] => {
                self.tokens[at] = Token::Key(span);
                Ok(())
            }
            _ => Err(RecordError("a map key that is not a string".into())),
        }
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), RecordError> {
        self.tokens.push(Token::End);
        Ok(())
    }
}

/// A struct being recorded; a [`RawValue`] is one too, recorded as [`Token::Raw`].
pub struct Struct<'a> {
    row: &'a mut RowTokens,
    raw: bool,
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = RecordError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        if self.raw {
            let at = self.row.tokens.len();
            value.serialize(&mut *self.row)?;
            return match self.row.tokens[at..] {
                [Token::Str(span)] => {
                    self.row.tokens[at] = Token::Raw(span);
                    Ok(())
                }
                _ => Err(RecordError("a raw JSON value that is not text".into())),
            };
        }
        self.row.tokens.push(Token::Field(key));
        value.serialize(&mut *self.row)
    }
    fn end(self) -> Result<(), RecordError> {
        if !self.raw {
            self.row.tokens.push(Token::End);
        }
        Ok(())
    }
}

/// An enum variant with content, recorded as serde_json writes it: `{"variant": content}`.
pub struct Variant<'a> {
    row: &'a mut RowTokens,
}

impl ser::SerializeTupleVariant for Variant<'_> {
    type Ok = ();
    type Error = RecordError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RecordError> {
        value.serialize(&mut *self.row)
    }
    fn end(self) -> Result<(), RecordError> {
        self.row.tokens.extend([Token::SeqEnd, Token::End]);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Variant<'_> {
    type Ok = ();
    type Error = RecordError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RecordError> {
        self.row.tokens.push(Token::Field(key));
        value.serialize(&mut *self.row)
    }
    fn end(self) -> Result<(), RecordError> {
        self.row.tokens.extend([Token::End, Token::End]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn same_json(value: &impl Serialize) {
        let direct = serde_json::to_string(value).unwrap();
        let tokens = RowTokens::record(value).unwrap();
        assert_eq!(serde_json::to_string(&tokens).unwrap(), direct);
        assert_eq!(tokens.json_len(), direct.len(), "{direct}");
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Unit,
        New(u8),
        Tuple(i32, bool),
        Named { a: Option<u32>, b: &'static str },
    }

    #[derive(serde::Serialize)]
    struct Row {
        id: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        absent: Option<u32>,
        nothing: Option<u32>,
        raw: Box<RawValue>,
        shapes: Vec<Shape>,
        bytes: &'static [u8],
        float: f64,
        nan: f64,
        ch: char,
        tuple: (u8, &'static str),
        empty: Vec<u8>,
    }

    #[test]
    fn every_kind_of_value_serialises_again_to_the_same_json_of_the_same_length() {
        same_json(&Row {
            id: "a \"quoted\" \\ \n\u{1} ünï",
            absent: None,
            nothing: None,
            raw: RawValue::from_string(r#""{\"k\":[1,2]}""#.into()).unwrap(),
            shapes: vec![
                Shape::Unit,
                Shape::New(7),
                Shape::Tuple(-3, true),
                Shape::Named { a: Some(1), b: "x" },
            ],
            bytes: b"\x00\xff",
            float: 1.5,
            nan: f64::NAN,
            ch: 'é',
            tuple: (1, ""),
            empty: vec![],
        });
        same_json(&json!({}));
        same_json(&json!([]));
        same_json(&json!({"a": {"b": [{}, [], null, -1, 18446744073709551615u64]}}));
    }

    #[test]
    fn a_json_column_is_recorded_as_its_literal() {
        #[derive(serde::Serialize)]
        struct Column {
            c: Box<RawValue>,
        }
        let c = RawValue::from_string(r#""{\"a\":1}""#.into()).unwrap();
        let tokens = RowTokens::record(&Column { c }).unwrap();
        let (_, value) = tokens.root().entries().next().unwrap();
        let Token::Raw(span) = value.token() else {
            panic!("{:?}", value.token())
        };
        assert_eq!(tokens.str(span), r#""{\"a\":1}""#);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_serialises_again_to_itself_and_its_length_is_exact(value in json_value()) {
            let direct = serde_json::to_string(&value).unwrap();
            let tokens = RowTokens::record(&value).unwrap();
            prop_assert_eq!(serde_json::to_string(&tokens).unwrap(), direct.clone());
            prop_assert_eq!(tokens.json_len(), direct.len());
        }
    }
}
