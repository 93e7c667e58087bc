//! Bytes of an export -> UTF-8 text. Polars and the scanner read UTF-8 only, so other encodings
//! (windows-1252 from Excel, Shift_JIS from Amazon Japan) are transcoded here, and a file that
//! claims UTF-8 but is not gets an error naming the byte offset and line.

use crate::error::{Error, Result};
use encoding_rs::Encoding;
use std::path::Path;

pub fn decode(path: &Path, bytes: Vec<u8>, encoding: &'static Encoding) -> Result<String> {
    if encoding == encoding_rs::UTF_8 {
        let mut bytes = bytes;
        if bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        return String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let line = 1 + memchr::memchr_iter(b'\n', &bytes[..offset]).count();
            Error::input(
                path,
                format!(
                    "is not valid UTF-8 at byte offset {offset} (line {line}): set `encoding:` on the load stage \
                     (windows-1252 for Excel exports, shift_jis for Amazon Japan)"
                ),
            )
        });
    }
    let (text, had_errors) = encoding.decode_with_bom_removal(&bytes);
    if had_errors {
        let offset = first_undecodable(encoding, &bytes);
        return Err(Error::input(
            path,
            format!("is not valid {} at byte offset {offset}: check `encoding:`", encoding.name()),
        ));
    }
    Ok(text.into_owned())
}

/// Byte offset of the first malformed sequence (decodes in growing prefixes; error path only).
fn first_undecodable(encoding: &'static Encoding, bytes: &[u8]) -> usize {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(64);
    let mut offset = 0;
    for chunk in bytes.chunks(1) {
        out.clear();
        let (result, read) = decoder.decode_to_string_without_replacement(chunk, &mut out, false);
        if let encoding_rs::DecoderResult::Malformed(_, _) = result {
            return offset;
        }
        offset += read;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bom_is_dropped() {
        let t = decode(Path::new("f"), b"\xEF\xBB\xBFa,b\n".to_vec(), encoding_rs::UTF_8).unwrap();
        assert_eq!(t, "a,b\n");
    }

    #[test]
    fn windows_1252_is_transcoded() {
        let t = decode(Path::new("f"), b"caf\xe9\n".to_vec(), encoding_rs::WINDOWS_1252).unwrap();
        assert_eq!(t, "café\n");
    }

    #[test]
    fn shift_jis_is_transcoded() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("東京都\n");
        let t = decode(Path::new("f"), bytes.into_owned(), encoding_rs::SHIFT_JIS).unwrap();
        assert_eq!(t, "東京都\n");
    }

    #[test]
    fn bad_utf8_names_offset_and_line() {
        let err = decode(Path::new("x.csv"), b"a,b\nc\xe9,d\n".to_vec(), encoding_rs::UTF_8).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.csv") && msg.contains("byte offset 5") && msg.contains("line 2"), "{msg}");
    }
}
