//! A strict PEM reader (RFC 7468) that says exactly what is wrong with a file.
//!
//! The CA portals' "parse failed" (catalogue C1) hides three everyday mistakes: a file that is not
//! PEM at all (DER, a Word document, a path pasted instead of content), stray spaces around the
//! `-----BEGIN …-----` lines (copied from an e-mail), and mismatched or unknown markers (a CSR or a
//! public key uploaded instead of the certificate). General PEM crates skip or accept these, so
//! this reader is line-based and reports the line.

use base64::Engine;

/// One decoded `-----BEGIN <label>-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
    /// 1-based line of the BEGIN marker.
    pub line: usize,
}

/// Why a text is not acceptable PEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No BEGIN marker anywhere; `hint` says what the bytes look like instead.
    #[error("not PEM: {hint}")]
    NotPem { hint: &'static str },
    /// A marker or base64 line carries spaces or tabs around it.
    #[error("line {line}: stray spaces around {what}; remove them")]
    StraySpaces { line: usize, what: String },
    /// A marker that is malformed, unknown here, or closes a different block.
    #[error("line {line}: {detail}")]
    WrongMarker { line: usize, detail: String },
    /// The body of a block is not base64.
    #[error("line {line}: invalid base64 in the {label} block")]
    BadBase64 { line: usize, label: String },
    /// A BEGIN marker whose END never comes.
    #[error("line {line}: -----BEGIN {label}----- has no matching -----END {label}-----")]
    Unterminated { line: usize, label: String },
}

impl PemError {
    /// Short stable name for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PemError::NotPem { .. } => "not_pem",
            PemError::StraySpaces { .. } => "stray_spaces",
            PemError::WrongMarker { .. } | PemError::Unterminated { .. } => "wrong_marker",
            PemError::BadBase64 { .. } => "bad_base64",
        }
    }
}

/// Splits `text` into PEM blocks, refusing anything but markers, base64 and blank lines between
/// blocks. Text outside blocks (the "explanatory text" of RFC 7468 §5.2, as `openssl x509 -text`
/// writes) is allowed as long as it does not look like a marker.
pub fn parse(text: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    let Ok(text) = std::str::from_utf8(text) else {
        return Err(PemError::NotPem {
            hint: not_pem_hint(text),
        });
    };
    if !text.contains("-BEGIN ") {
        return Err(PemError::NotPem {
            hint: not_pem_hint(text.as_bytes()),
        });
    }
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None; // label, line, base64 so far
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let trimmed = line.trim_matches([' ', '\t']);
        let is_marker = trimmed.contains("-----BEGIN") || trimmed.contains("-----END");
        if is_marker && trimmed.len() != line.len() && trimmed.starts_with('-') {
            return Err(PemError::StraySpaces {
                line: line_no,
                what: format!("`{trimmed}`"),
            });
        }
        match &mut open {
            None => {
                if let Some(label) = marker(trimmed, "BEGIN", line_no)? {
                    open = Some((label, line_no, String::new()));
                } else if is_marker {
                    return Err(PemError::WrongMarker {
                        line: line_no,
                        detail: format!("`{trimmed}` without a BEGIN marker before it"),
                    });
                }
            }
            Some((label, begin_line, body)) => {
                if let Some(end) = marker(trimmed, "END", line_no)? {
                    if &end != label {
                        return Err(PemError::WrongMarker {
                            line: line_no,
                            detail: format!(
                                "-----END {end}----- closes -----BEGIN {label}----- of line {begin_line}"
                            ),
                        });
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| PemError::BadBase64 {
                            line: *begin_line,
                            label: label.clone(),
                        })?;
                    blocks.push(PemBlock {
                        label: std::mem::take(label),
                        der,
                        line: *begin_line,
                    });
                    open = None;
                } else if trimmed.starts_with("-----BEGIN") {
                    return Err(PemError::Unterminated {
                        line: *begin_line,
                        label: label.clone(),
                    });
                } else if trimmed.len() != line.len() && !trimmed.is_empty() {
                    return Err(PemError::StraySpaces {
                        line: line_no,
                        what: "a base64 line".into(),
                    });
                } else if trimmed.contains(':') {
                    // RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted legacy key.
                    return Err(PemError::WrongMarker {
                        line: line_no,
                        detail: format!(
                            "the {label} block has headers (`{trimmed}`): an encrypted key; decrypt it first (openssl pkey -in key.pem -out plain.pem)"
                        ),
                    });
                } else {
                    body.push_str(trimmed);
                }
            }
        }
    }
    if let Some((label, line, _)) = open {
        return Err(PemError::Unterminated { line, label });
    }
    Ok(blocks)
}

/// Parses `-----BEGIN <label>-----` (or END); `Ok(None)` when the line is no such marker.
fn marker(line: &str, kind: &str, line_no: usize) -> Result<Option<String>, PemError> {
    let head = format!("-----{kind} ");
    let Some(rest) = line.strip_prefix(&head) else {
        if line.contains(&format!("{kind} ")) && line.contains("-----") {
            return Err(PemError::WrongMarker {
                line: line_no,
                detail: format!("`{line}` is not a well-formed marker (five dashes on each side)"),
            });
        }
        return Ok(None);
    };
    match rest.strip_suffix("-----") {
        Some(label) if !label.is_empty() && !label.ends_with('-') => Ok(Some(label.to_owned())),
        _ => Err(PemError::WrongMarker {
            line: line_no,
            detail: format!("`{line}` is not a well-formed marker (five dashes on each side)"),
        }),
    }
}

fn not_pem_hint(bytes: &[u8]) -> &'static str {
    match bytes.first() {
        None => "the input is empty",
        Some(0x30) => "this looks like DER (binary); convert it: openssl x509 -inform der -in cert.der -out cert.pem",
        Some(b'P') if bytes.starts_with(b"PK") => "this looks like a ZIP archive; unpack it and upload the .pem/.crt inside",
        _ if std::str::from_utf8(bytes).is_err() => "the input is binary, not text",
        _ => "no -----BEGIN …----- line found",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

    #[test]
    fn decodes_blocks_and_allows_explanatory_text() {
        let text = format!("subject=CN = x\n{GOOD}\n{GOOD}");
        let blocks = parse(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, vec![0, 1, 2]);
        assert_eq!(blocks[0].line, 2);
    }

    #[test]
    fn crlf_is_fine() {
        let text = GOOD.replace('\n', "\r\n");
        assert_eq!(parse(text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn der_input_is_named() {
        let e = parse(&[0x30, 0x82, 0x01]).unwrap_err();
        assert!(matches!(e, PemError::NotPem { hint } if hint.contains("DER")));
        assert_eq!(e.reason(), "not_pem");
    }

    #[test]
    fn spaces_before_marker_are_named_with_line() {
        let text = format!("  {GOOD}");
        assert_eq!(
            parse(text.as_bytes()).unwrap_err(),
            PemError::StraySpaces {
                line: 1,
                what: "`-----BEGIN CERTIFICATE-----`".into()
            }
        );
        let text = GOOD.replace("AAEC", "AAEC ");
        assert!(matches!(
            parse(text.as_bytes()).unwrap_err(),
            PemError::StraySpaces { line: 2, .. }
        ));
    }

    #[test]
    fn mismatched_end_is_named() {
        let text = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END PRIVATE KEY-----\n";
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(matches!(e, PemError::WrongMarker { line: 3, .. }), "{e}");
    }

    #[test]
    fn four_dashes_are_named() {
        let text = "----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse(text.as_bytes()).unwrap_err(),
            PemError::WrongMarker { line: 1, .. }
        ));
    }

    #[test]
    fn missing_end_and_bad_base64() {
        let text = "-----BEGIN CERTIFICATE-----\nAAEC\n";
        assert!(matches!(
            parse(text.as_bytes()).unwrap_err(),
            PemError::Unterminated { line: 1, .. }
        ));
        let text = GOOD.replace("AAEC", "A*EC");
        assert!(matches!(
            parse(text.as_bytes()).unwrap_err(),
            PemError::BadBase64 { .. }
        ));
    }
}
