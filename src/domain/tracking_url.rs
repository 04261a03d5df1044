//! Tracking URLs: the widget's page with the open parameter, widget version and source code.

use url::Url;

use super::DomainError;
use super::source::SourceCode;
use super::widget::WidgetVersion;

/// The query pair that makes widget.js open itself, `roof-estimate=open` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenParameter {
    key: String,
    value: String,
}

impl OpenParameter {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let field = "open_parameter";
        let (key, value) = raw
            .split_once('=')
            .ok_or_else(|| DomainError::new(field, "open_parameter must look like key=value"))?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !ok(key) || !ok(value) || key == "v" || key == "s" {
            return Err(DomainError::new(
                field,
                "open_parameter key and value must be letters, digits, '-', '_' or '.', \
                 and the key must not be v or s",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl Default for OpenParameter {
    fn default() -> Self {
        Self {
            key: "roof-estimate".to_owned(),
            value: "open".to_owned(),
        }
    }
}

/// The site URL with its own query kept, any stale tracking pairs dropped (so a site URL that
/// was itself copied from a tracking link does not carry two `s` values), and
/// `<open>&v=<version>&s=<code>` appended.
pub fn tracking_url(
    site: &Url,
    open: &OpenParameter,
    version: WidgetVersion,
    code: SourceCode,
) -> Url {
    let mut url = site.clone();
    let kept: Vec<(String, String)> = site
        .query_pairs()
        .filter(|(k, _)| k != "v" && k != "s" && k != open.key())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        query
            .append_pair(open.key(), open.value())
            .append_pair("v", &version.to_string())
            .append_pair("s", &code.to_string());
    }
    url
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw)
            .unwrap_or_else(|_| Url::parse("https://x.example/").unwrap_or_else(|_| unreachable!()))
    }

    fn v(n: u32) -> WidgetVersion {
        WidgetVersion::new(n).unwrap_or(WidgetVersion::PRIMARY)
    }

    fn s(n: u32) -> SourceCode {
        SourceCode::new(n).unwrap_or(SourceCode::SYSTEM)
    }

    #[test]
    fn tracking_url_appends_open_version_and_code() {
        let got = tracking_url(
            &url("https://acme-roofing.example/"),
            &OpenParameter::default(),
            v(1),
            s(2),
        );
        assert_eq!(
            got.as_str(),
            "https://acme-roofing.example/?roof-estimate=open&v=01&s=02"
        );
    }

    #[test]
    fn tracking_url_keeps_the_site_urls_own_query_and_fragment() {
        let got = tracking_url(
            &url("https://acme.example/roofing?lang=en#quote"),
            &OpenParameter::default(),
            v(2),
            s(3),
        );
        assert_eq!(
            got.as_str(),
            "https://acme.example/roofing?lang=en&roof-estimate=open&v=02&s=03#quote"
        );
    }

    #[test]
    fn tracking_url_replaces_stale_tracking_pairs() {
        let got = tracking_url(
            &url("https://acme.example/?roof-estimate=open&v=09&s=09&a=1"),
            &OpenParameter::default(),
            v(1),
            s(4),
        );
        assert_eq!(
            got.as_str(),
            "https://acme.example/?a=1&roof-estimate=open&v=01&s=04"
        );
    }

    #[test]
    fn open_parameter_is_a_setting() {
        let open = OpenParameter::parse("solar-quote=go").unwrap_or_default();
        let got = tracking_url(&url("https://sun.example/"), &open, v(1), s(2));
        assert_eq!(
            got.as_str(),
            "https://sun.example/?solar-quote=go&v=01&s=02"
        );
        assert!(OpenParameter::parse("v=open").is_err());
        assert!(OpenParameter::parse("no-equals").is_err());
    }

    proptest! {
        #[test]
        fn every_tracking_url_parses_back_to_the_same_v_and_s(
            path in "[a-z0-9/]{0,20}",
            query in proptest::collection::vec(("[a-z&=?# ]{1,8}", "[a-zA-Z0-9&=?#% ]{0,8}"), 0..4),
            version in 1u32..200,
            code in 1u32..200,
        ) {
            let mut site = url("https://acme.example/");
            site.set_path(&path);
            {
                let mut q = site.query_pairs_mut();
                for (k, val) in &query { q.append_pair(k, val); }
            }
            let got = tracking_url(&site, &OpenParameter::default(), v(version), s(code));
            let reparsed = Url::parse(got.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let pairs: Vec<(String, String)> = reparsed.query_pairs().into_owned().collect();
            let get = |k: &str| pairs.iter().filter(|(pk, _)| pk == k).map(|(_, pv)| pv.clone()).collect::<Vec<_>>();
            prop_assert_eq!(get("v"), vec![v(version).to_string()]);
            prop_assert_eq!(get("s"), vec![s(code).to_string()]);
            prop_assert_eq!(get("roof-estimate"), vec!["open".to_owned()]);
        }
    }
}
