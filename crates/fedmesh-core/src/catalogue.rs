//! Catalogue queries: which offers a search or a watch selects. Text matching ignores case
//! and French accents, so `video` finds « Plateforme vidéo ».

use fedmesh_proto::pb;

use crate::identity::MemberId;
use crate::offer::FieldError;

/// Lowercases and strips the accents of French (and most Latin) letters.
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => 'a',
            'ç' => 'c',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' | 'ì' => 'i',
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ÿ' | 'ý' => 'y',
            'ñ' => 'n',
            'œ' => 'o',
            'æ' => 'a',
            other => other,
        })
        .collect()
}

/// A validated catalogue query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    words: Vec<String>,
    category: Option<String>,
    provider: Option<MemberId>,
    statuses: Vec<i32>,
    has_free_capacity: bool,
}

fn field(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.into(),
    }
}

impl Query {
    /// The query of a `SearchOffers` request; errors name the field.
    pub fn search(request: &pb::SearchOffersRequest) -> Result<Self, FieldError> {
        if request.text.chars().count() > 200 {
            return Err(field("text", "at most 200 characters"));
        }
        crate::filter::check_enum_filter::<pb::OfferStatus>("statuses", &request.statuses)
            .map_err(|(name, message)| field(&name, message))?;
        let mut statuses = Vec::new();
        for (i, status) in request.statuses.iter().enumerate() {
            match pb::OfferStatus::try_from(*status) {
                Ok(pb::OfferStatus::Unspecified) | Err(_) => {
                    return Err(field(
                        &format!("statuses[{i}]"),
                        format!("unknown status {status}"),
                    ));
                }
                Ok(s) => statuses.push(s as i32),
            }
        }
        Ok(Self {
            words: fold(&request.text)
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            statuses,
            has_free_capacity: request.has_free_capacity,
            ..Self::scope(&request.category, &request.provider_member_id)?
        })
    }

    /// The filter of a `WatchCatalogue` request.
    pub fn watch(request: &pb::WatchCatalogueRequest) -> Result<Self, FieldError> {
        let mut query = Self::scope(&request.category, &request.provider_member_id)?;
        // A watcher must see withdrawals, so every status passes.
        query.statuses = vec![
            pb::OfferStatus::Pilot as i32,
            pb::OfferStatus::Available as i32,
            pb::OfferStatus::Deprecated as i32,
            pb::OfferStatus::Withdrawn as i32,
        ];
        Ok(query)
    }

    fn scope(category: &str, provider: &str) -> Result<Self, FieldError> {
        if category.len() > 63 {
            return Err(field("category", "at most 63 characters"));
        }
        let provider = if provider.is_empty() {
            None
        } else {
            Some(
                provider
                    .parse::<MemberId>()
                    .map_err(|e| field("provider_member_id", e.to_string()))?,
            )
        };
        Ok(Self {
            category: (!category.is_empty()).then(|| category.to_owned()),
            provider,
            ..Self::default()
        })
    }

    /// Whether the query selects `entry`. Without statuses, every status but WITHDRAWN passes.
    pub fn matches(&self, entry: &pb::CatalogueOffer) -> bool {
        let Some(offer) = &entry.offer else {
            return false;
        };
        let status_ok = if self.statuses.is_empty() {
            offer.status != pb::OfferStatus::Withdrawn as i32
        } else {
            self.statuses.contains(&offer.status)
        };
        if !status_ok
            || self
                .category
                .as_deref()
                .is_some_and(|c| c != offer.category)
            || self
                .provider
                .as_ref()
                .is_some_and(|p| p.as_str() != offer.provider_member_id)
        {
            return false;
        }
        if self.has_free_capacity {
            let max = offer.capacity.as_ref().map_or(0, |c| c.max_tenants);
            if entry.tenant_count >= max {
                return false;
            }
        }
        if self.words.is_empty() {
            return true;
        }
        let description = offer.description.as_ref();
        let haystack = fold(
            &[
                offer.offer_id.as_str(),
                offer.service_id.as_str(),
                offer.service_name.as_str(),
                offer.category.as_str(),
                offer.provider_member_id.as_str(),
                description.map_or("", |d| d.fr.as_str()),
                description.map_or("", |d| d.en.as_str()),
            ]
            .join(" "),
        );
        self.words
            .iter()
            .all(|word| haystack.contains(word.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        id: &str,
        provider: &str,
        category: &str,
        status: pb::OfferStatus,
        fr: &str,
        en: &str,
    ) -> pb::CatalogueOffer {
        pb::CatalogueOffer {
            offer: Some(pb::Offer {
                offer_id: id.into(),
                provider_member_id: provider.into(),
                category: category.into(),
                status: status as i32,
                service_name: id.into(),
                description: Some(pb::LocalizedText {
                    fr: fr.into(),
                    en: en.into(),
                }),
                capacity: Some(pb::Capacity {
                    max_tenants: 2,
                    max_users_per_tenant: 10,
                }),
                ..Default::default()
            }),
            tenant_count: 0,
            ..Default::default()
        }
    }

    fn search(text: &str) -> pb::SearchOffersRequest {
        pb::SearchOffersRequest {
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn text_matches_french_or_english_without_accents_or_case() {
        let pod = entry(
            "unistra.pod",
            "unistra",
            "video",
            pb::OfferStatus::Available,
            "Plateforme vidéo",
            "Video platform",
        );
        for text in [
            "video",
            "VIDÉO",
            "plateforme",
            "platform",
            "unistra",
            "vid plat",
        ] {
            assert!(
                Query::search(&search(text)).unwrap().matches(&pod),
                "{text}"
            );
        }
        assert!(!Query::search(&search("nuage")).unwrap().matches(&pod));
    }

    #[test]
    fn filters_combine() {
        let pod = entry(
            "unistra.pod",
            "unistra",
            "video",
            pb::OfferStatus::Available,
            "a",
            "a",
        );
        let gone = entry(
            "rouen.old",
            "rouen",
            "video",
            pb::OfferStatus::Withdrawn,
            "a",
            "a",
        );
        let all = Query::search(&search("")).unwrap();
        assert!(all.matches(&pod));
        assert!(
            !all.matches(&gone),
            "withdrawn offers are hidden by default"
        );
        let withdrawn = Query::search(&pb::SearchOffersRequest {
            statuses: vec![pb::OfferStatus::Withdrawn as i32],
            ..Default::default()
        })
        .unwrap();
        assert!(withdrawn.matches(&gone) && !withdrawn.matches(&pod));
        let by_provider = Query::search(&pb::SearchOffersRequest {
            provider_member_id: "rouen".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(!by_provider.matches(&pod));
        let by_category = Query::search(&pb::SearchOffersRequest {
            category: "otp".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(!by_category.matches(&pod));
        let mut full = pod.clone();
        full.tenant_count = 2;
        let free = Query::search(&pb::SearchOffersRequest {
            has_free_capacity: true,
            ..Default::default()
        })
        .unwrap();
        assert!(free.matches(&pod) && !free.matches(&full));
    }

    #[test]
    fn bad_queries_name_the_field() {
        let err = Query::search(&pb::SearchOffersRequest {
            provider_member_id: "Rouen".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "provider_member_id");
        let err = Query::search(&pb::SearchOffersRequest {
            statuses: vec![42],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "statuses[0]");
        let err = Query::search(&search(&"x".repeat(201))).unwrap_err();
        assert_eq!(err.field, "text");
    }
}
