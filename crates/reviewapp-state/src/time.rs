//! The status's clock resolution.

use k8s_openapi::jiff::Timestamp;

/// `now` cut to whole seconds: the resolution of every time in a status (a `metav1.Time` is
/// serialised in seconds), so that a status written and read back compares equal.
pub fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_second_parts_are_dropped() {
        let precise = Timestamp::new(1_700_000_000, 999_999_999).unwrap();
        assert_eq!(
            whole_seconds(precise),
            Timestamp::from_second(1_700_000_000).unwrap()
        );
        let whole = Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(whole_seconds(whole), whole);
    }
}
