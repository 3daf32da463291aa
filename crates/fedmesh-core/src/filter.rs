//! Enum filters of list requests (`statuses`, `states`, `entity_kinds`, ...): a handful of
//! known values, never a list long enough to make a listing cost more than its page.

/// Most values one filter may list (more than any of the contract's enums has).
pub const MAX_FILTER_VALUES: usize = 16;

/// Checks the enum filter `field`: at most [`MAX_FILTER_VALUES`] values, each a known,
/// specified value of `E`. The error names the field (and the index of a bad value).
pub fn check_enum_filter<E: TryFrom<i32>>(
    field: &str,
    values: &[i32],
) -> Result<(), (String, String)> {
    if values.len() > MAX_FILTER_VALUES {
        return Err((
            field.to_owned(),
            format!("at most {MAX_FILTER_VALUES} values"),
        ));
    }
    for (i, value) in values.iter().enumerate() {
        if *value == 0 || E::try_from(*value).is_err() {
            return Err((format!("{field}[{i}]"), format!("unknown value {value}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedmesh_proto::pb;

    #[test]
    fn filters_are_short_lists_of_known_values() {
        assert!(check_enum_filter::<pb::OfferStatus>("statuses", &[]).is_ok());
        assert!(check_enum_filter::<pb::OfferStatus>("statuses", &[1, 2]).is_ok());
        assert_eq!(
            check_enum_filter::<pb::OfferStatus>("statuses", &[1, 42]),
            Err(("statuses[1]".to_owned(), "unknown value 42".to_owned()))
        );
        assert_eq!(
            check_enum_filter::<pb::OfferStatus>("statuses", &[0])
                .unwrap_err()
                .0,
            "statuses[0]"
        );
        assert_eq!(
            check_enum_filter::<pb::OfferStatus>("statuses", &[1; 17])
                .unwrap_err()
                .0,
            "statuses"
        );
    }
}
