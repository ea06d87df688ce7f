//! Values written as strings in the file and parsed on reading (durations, addresses, names),
//! so that serde reports a bad one with its position. A leaf that [`super::raw`] and
//! [`super::probe`] both read with.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A value written as a string and parsed with its [`FromStr`], so that a bad value is reported
/// by serde with the position of the string.
pub(super) struct Parsed<T>(pub(super) T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParsedVisitor<T>(PhantomData<T>);
        impl<T> Visitor<'_> for ParsedVisitor<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = Parsed<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map(Parsed).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(ParsedVisitor(PhantomData))
    }
}

/// A duration written like `30s`, `5m` or `1h 30m`.
pub(super) struct HumanDuration(pub(super) Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| format!("{s:?} is not a duration like \"30s\" or \"5m\": {e}"))
    }
}
