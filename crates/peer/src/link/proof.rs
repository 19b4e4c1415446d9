//! Identity on the link: each side's session descriptions carry a proof
//! that the DTLS certificate they name belongs to its peer id.
//!
//! A description's DTLS fingerprints (`a=fingerprint`) say which
//! certificate the other side must present in the DTLS handshake; whoever
//! carries the descriptions (a signaling server, a compromised one, the
//! application's own channel) could swap them for its own and sit in the
//! middle of the link. So each side signs its fingerprints with its
//! identity key and adds the proof as a session-level attribute:
//!
//! ```text
//! a=switchboard-identity:<public key, base64url> <signature, base64url>
//! ```
//!
//! The signature is Ed25519 over `switchboard-dtls-fingerprint-v1\n`
//! followed by every `a=fingerprint` value of the description (algorithm
//! in lower case, digest in upper case, one per line, sorted). The side
//! that takes the description checks that the key's peer id is the one it
//! expects and that the signature holds, before the WebRTC stack sees the
//! description; the stack then holds the DTLS handshake to those
//! fingerprints.

use switchboard_proto::{PeerId, encode_b64, verify_signed};

use crate::identity::Identity;

/// The attribute's name.
const ATTRIBUTE: &str = "switchboard-identity";
/// What the signed text starts with.
const CONTEXT: &str = "switchboard-dtls-fingerprint-v1\n";

/// Why a description's proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// No proof, or more than one.
    #[error("the description carries no identity proof (or more than one)")]
    Missing,
    /// No DTLS fingerprint to prove.
    #[error("the description names no DTLS fingerprint")]
    NoFingerprint,
    /// The proof's key or signature does not decode, or the signature does
    /// not hold for the description's fingerprints.
    #[error("the identity proof does not hold for the description's DTLS fingerprints")]
    BadSignature,
    /// The proof holds, for another peer.
    #[error("the description proves peer {got}, not {expected}")]
    WrongPeer {
        /// The peer expected.
        expected: PeerId,
        /// The peer proven.
        got: PeerId,
    },
}

/// The text the signature covers: the description's fingerprints.
fn signed_text(sdp: &str) -> Option<String> {
    let mut prints: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .filter_map(|v| {
            let mut parts = v.split_whitespace();
            let (algorithm, digest) = (parts.next()?, parts.next()?);
            Some(format!("{} {}", algorithm.to_ascii_lowercase(), digest.to_ascii_uppercase()))
        })
        .collect();
    if prints.is_empty() {
        return None;
    }
    prints.sort();
    prints.dedup();
    Some(format!("{CONTEXT}{}\n", prints.join("\n")))
}

/// `sdp` with `identity`'s proof added before its first media section
/// (unchanged if it names no fingerprint).
pub(crate) fn sign(sdp: &str, identity: &Identity) -> String {
    let Some(text) = signed_text(sdp) else { return sdp.to_owned() };
    let line =
        format!("a={ATTRIBUTE}:{} {}", encode_b64(&identity.public_key()), encode_b64(&identity.sign(text.as_bytes())));
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    match sdp.find("\nm=") {
        Some(at) => format!("{}{line}{eol}{}", &sdp[..=at], &sdp[at + 1..]),
        None => format!("{}{eol}{line}{eol}", sdp.trim_end()),
    }
}

/// `sdp` without its proof lines (what the WebRTC stack is given).
pub(crate) fn strip(sdp: &str) -> String {
    let prefix = format!("a={ATTRIBUTE}:");
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if !line.trim_start().starts_with(&prefix) {
            out.push_str(line);
        }
    }
    out
}

/// Checks that `sdp` proves `expected`: its one proof's key is
/// `expected`'s and signs the description's fingerprints.
pub(crate) fn verify(sdp: &str, expected: PeerId) -> Result<(), ProofError> {
    let prefix = format!("a={ATTRIBUTE}:");
    let mut proofs = sdp.lines().filter_map(|l| l.trim().strip_prefix(prefix.as_str()));
    let (Some(proof), None) = (proofs.next(), proofs.next()) else { return Err(ProofError::Missing) };
    let text = signed_text(sdp).ok_or(ProofError::NoFingerprint)?;
    let mut parts = proof.split_whitespace();
    let (Some(key), Some(signature), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ProofError::BadSignature);
    };
    let got = verify_signed(key, signature, text.as_bytes()).map_err(|_| ProofError::BadSignature)?;
    if got != expected {
        return Err(ProofError::WrongPeer { expected, got });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
        a=fingerprint:sha-256 ab:cd:ef\r\na=setup:actpass\r\na=mid:0\r\n";

    #[test]
    fn a_signed_description_proves_its_peer_and_strips_back_to_the_original() {
        let me = Identity::from_secret_bytes([7; 32]);
        let signed = sign(SDP, &me);
        assert!(signed.contains("\r\na=switchboard-identity:"), "{signed}");
        let (proof, media) = (signed.find("a=switchboard-identity"), signed.find("m=application"));
        assert!(proof.expect("a proof") < media.expect("a media section"), "{signed}");
        assert_eq!(verify(&signed, me.peer_id()), Ok(()));
        assert_eq!(strip(&signed), SDP);
        // Case and order of the fingerprints do not matter.
        assert_eq!(verify(&signed.replace("ab:cd:ef", "AB:CD:EF").replace("sha-256", "SHA-256"), me.peer_id()), Ok(()));
    }

    #[test]
    fn a_swapped_fingerprint_another_peer_or_no_proof_is_refused() {
        let me = Identity::from_secret_bytes([7; 32]);
        let other = Identity::from_secret_bytes([8; 32]);
        let signed = sign(SDP, &me);
        assert_eq!(verify(&signed.replace("ab:cd:ef", "ab:cd:00"), me.peer_id()), Err(ProofError::BadSignature));
        let added = signed.replace("a=setup", "a=fingerprint:sha-256 00:11\r\na=setup");
        assert_eq!(verify(&added, me.peer_id()), Err(ProofError::BadSignature));
        assert_eq!(
            verify(&signed, other.peer_id()),
            Err(ProofError::WrongPeer { expected: other.peer_id(), got: me.peer_id() })
        );
        assert_eq!(verify(SDP, me.peer_id()), Err(ProofError::Missing));
        let twice = sign(&signed, &other);
        assert_eq!(verify(&twice, me.peer_id()), Err(ProofError::Missing));
        assert_eq!(
            verify(&sign(SDP, &me).replace("a=fingerprint:sha-256 ab:cd:ef\r\n", ""), me.peer_id()),
            Err(ProofError::NoFingerprint)
        );
        for junk in ["a=switchboard-identity:", "a=switchboard-identity:!! ??", "a=switchboard-identity:a b c"] {
            let bad = SDP.replace("a=group", &format!("{junk}\r\na=group"));
            assert_eq!(verify(&bad, me.peer_id()), Err(ProofError::BadSignature), "{junk}");
        }
    }
}
