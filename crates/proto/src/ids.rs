//! Identifiers on the wire: peer ids, room codes, connection ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::ValidationError;

/// A peer's id: the first 16 bytes of SHA-256 over its Ed25519 public key,
/// written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 16]);

impl PeerId {
    /// Length of a peer id in bytes (as used in binary relay frames).
    pub const LEN: usize = 16;

    /// Derives the id that belongs to an Ed25519 public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    /// Builds an id from its raw 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl PeerId {
    /// The 32 lowercase hex digits, without going through `fmt` (ids are
    /// written for every relayed signal).
    fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex();
        serializer.serialize_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err(ValidationError::new("peer id must be 32 lowercase hex digits"));
        }
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]);
            let lo = hex_value(pair[1]);
            match (hi, lo) {
                (Some(hi), Some(lo)) => id[i] = (hi << 4) | lo,
                _ => return Err(ValidationError::new("peer id must be 32 lowercase hex digits")),
            }
        }
        Ok(Self(id))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A room code: 6 to 16 characters from `[A-Z0-9]`.
///
/// Parsing upper-cases its input and drops `-`, so users may type codes in
/// any case and in groups (`k7q2-zx4m-p9` is `K7Q2ZX4MP9`). Servers make
/// codes from [`RoomCode::ALPHABET`], 5 bits a character; Switchboard's
/// server makes 10 characters (50 bits) unless its operator chooses
/// otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode {
    len: u8,
    bytes: [u8; RoomCode::MAX_LEN],
}

impl RoomCode {
    /// Fewest characters in a code.
    pub const MIN_LEN: usize = 6;
    /// Most characters in a code.
    pub const MAX_LEN: usize = 16;
    /// The characters servers make codes from: `A-Z` and `2-9` without the
    /// look-alikes `I` and `O` (and `0`, `1`), 32 in all.
    pub const ALPHABET: &'static [u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    /// Builds a code from indices into [`RoomCode::ALPHABET`] (each taken
    /// modulo 32), one per character: 6 to 16 of them.
    pub fn from_indices(indices: &[u8]) -> Result<Self, ValidationError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&indices.len()) {
            return Err(ValidationError::new("room code must be 6 to 16 characters from A-Z and 0-9"));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        for (slot, i) in bytes.iter_mut().zip(indices) {
            *slot = Self::ALPHABET[usize::from(i % 32)];
        }
        Ok(Self { len: indices.len() as u8, bytes })
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // The bytes are always ASCII from [A-Z0-9] (checked on construction).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("??????")
    }
}

impl FromStr for RoomCode {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ValidationError::new("room code must be 6 to 16 characters from A-Z and 0-9");
        let mut bytes = [0u8; Self::MAX_LEN];
        let mut len = 0;
        for c in s.bytes().filter(|&c| c != b'-') {
            let c = c.to_ascii_uppercase();
            if !c.is_ascii_uppercase() && !c.is_ascii_digit() {
                return Err(invalid());
            }
            *bytes.get_mut(len).ok_or_else(invalid)? = c;
            len += 1;
        }
        if len < Self::MIN_LEN {
            return Err(invalid());
        }
        Ok(Self { len: len as u8, bytes })
    }
}

impl fmt::Display for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomCode({self})")
    }
}

/// Names one negotiation between two peers (for example one peer connection
/// and its ICE restarts): 1 to 64 characters from `[A-Za-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(String);

impl ConnId {
    /// Longest allowed connection id.
    pub const MAX_LEN: usize = 64;

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A connection id written as 16 hex digits (always valid).
    pub fn from_u64(n: u64) -> Self {
        Self(format!("{n:016x}"))
    }
}

impl FromStr for ConnId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("conn must be 1-64 characters from A-Z a-z 0-9 _ - ."))
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({})", self.0)
    }
}

impl Serialize for RoomCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for ConnId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

macro_rules! string_deserialize {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

string_deserialize!(PeerId, RoomCode, ConnId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_round_trips_through_hex() {
        let id = PeerId::from_public_key(&[7u8; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<PeerId>().ok(), Some(id));
        assert!("ABCDEF0123456789abcdef0123456789".parse::<PeerId>().is_err());
        assert!("abc".parse::<PeerId>().is_err());
    }

    #[test]
    fn room_codes_are_normalised_and_checked() {
        assert_eq!("ab12cd".parse::<RoomCode>().map(|c| c.to_string()).ok().as_deref(), Some("AB12CD"));
        assert_eq!("k7q2-zx4m-p9".parse::<RoomCode>().map(|c| c.to_string()).ok().as_deref(), Some("K7Q2ZX4MP9"));
        assert!("AB12C".parse::<RoomCode>().is_err());
        assert!("AB-12-C".parse::<RoomCode>().is_err(), "dashes do not count");
        assert!("AB12C!".parse::<RoomCode>().is_err());
        assert!("ÄB12CD".parse::<RoomCode>().is_err());
        assert!("A".repeat(17).parse::<RoomCode>().is_err());
        assert!("A".repeat(16).parse::<RoomCode>().is_ok());
        assert_eq!("ABCDEF".parse::<RoomCode>().ok(), "abc-def".parse().ok(), "one code, however typed");
        let made = RoomCode::from_indices(&[0, 1, 7, 8, 31, 32]).map(|c| c.to_string()).ok();
        assert_eq!(made.as_deref(), Some("ABHJ9A"));
        assert!(RoomCode::from_indices(&[0; 5]).is_err() && RoomCode::from_indices(&[0; 17]).is_err());
    }

    #[test]
    fn conn_ids_are_bounded() {
        assert!("c1".parse::<ConnId>().is_ok());
        assert!("".parse::<ConnId>().is_err());
        assert!("a b".parse::<ConnId>().is_err());
        assert!("x".repeat(65).parse::<ConnId>().is_err());
    }
}
