//! MLflow's registered model URIs (`models:/NAME/VERSION`, `models:/NAME/STAGE`,
//! `models:/NAME@ALIAS`), as `locus-model` reads them.

/// A registered model URI: the name and how the version is chosen.
#[derive(Debug, PartialEq)]
pub enum Pick {
    Version(String),
    Stage(String),
    Alias(String),
}

pub fn parse_model_uri(uri: &str) -> Result<(String, Pick), String> {
    let bad = || {
        format!("'{uri}' is not a registered model URI (models:/NAME/VERSION, models:/NAME/STAGE or models:/NAME@ALIAS)")
    };
    let rest = uri.strip_prefix("models:/").ok_or_else(bad)?;
    if let Some((name, alias)) = rest.split_once('@') {
        if name.is_empty() || alias.is_empty() || alias.contains('/') {
            return Err(bad());
        }
        return Ok((name.to_string(), Pick::Alias(alias.to_string())));
    }
    let (name, which) = rest.rsplit_once('/').ok_or_else(bad)?;
    if name.is_empty() || which.is_empty() {
        return Err(bad());
    }
    let pick = if which.bytes().all(|b| b.is_ascii_digit()) {
        Pick::Version(which.to_string())
    } else {
        Pick::Stage(which.to_string())
    };
    Ok((name.to_string(), pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_uris() {
        assert_eq!(
            parse_model_uri("models:/fraud/3").unwrap(),
            ("fraud".into(), Pick::Version("3".into()))
        );
        assert_eq!(
            parse_model_uri("models:/fraud/Production").unwrap(),
            ("fraud".into(), Pick::Stage("Production".into()))
        );
        assert_eq!(
            parse_model_uri("models:/fraud@champion").unwrap(),
            ("fraud".into(), Pick::Alias("champion".into()))
        );
        for bad in [
            "runs:/x/model",
            "models:/fraud",
            "models:/@a",
            "models://3",
            "models:/a@",
        ] {
            assert!(parse_model_uri(bad).is_err(), "{bad}");
        }
    }
}
