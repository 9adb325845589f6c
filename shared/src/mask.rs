//! Phone-number masking for logs.
//!
//! Guarantee: [`mask_phone`] never returns more than the first two and the
//! last four digits of its input; everything else becomes `*`. Short or odd
//! inputs are masked harder, never softer. Use it (or [`MaskedPhone`]) for
//! every phone number that reaches a log line.

use std::fmt;

/// Masks a phone number: `+5511987654321` becomes `+55*******4321`.
///
/// A leading `+` is kept. Numbers of 8 digits or fewer keep only their last
/// two digits. Non-digit characters are masked like digits.
pub fn mask_phone(phone: &str) -> String {
    let (plus, digits) = match phone.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", phone),
    };
    let chars: Vec<char> = digits.chars().collect();
    let n = chars.len();
    let (keep_head, keep_tail) = match n {
        0..=2 => (0, 0),
        3..=8 => (0, 2),
        _ => (2, 4),
    };
    let mut out = String::with_capacity(plus.len() + n);
    out.push_str(plus);
    for (i, c) in chars.iter().enumerate() {
        if i < keep_head || i >= n - keep_tail {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

/// A `Display` wrapper that masks, for structured log fields:
/// `info!(from = %MaskedPhone(&phone), "...")`.
#[derive(Debug, Clone, Copy)]
pub struct MaskedPhone<'a>(pub &'a str);

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_phone(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_an_e164_number_keeping_country_code_and_last_four() {
        assert_eq!(mask_phone("+5511987654321"), "+55*******4321");
    }

    #[test]
    fn masks_a_number_without_plus() {
        assert_eq!(mask_phone("15551234567"), "15*****4567");
    }

    #[test]
    fn short_numbers_keep_at_most_two_digits() {
        assert_eq!(mask_phone("12345678"), "******78");
        assert_eq!(mask_phone("12"), "**");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone("+"), "+");
    }

    #[test]
    fn display_wrapper_masks() {
        assert_eq!(MaskedPhone("+5511987654321").to_string(), "+55*******4321");
    }

    #[test]
    fn multibyte_input_does_not_panic_and_is_masked() {
        assert_eq!(mask_phone("ééééééééééé"), "éé*****éééé");
    }
}
