//! An organization's widgets and sources as attribution sees them: the catalog an arrival is
//! credited against. Built by the store from its rows (and kept between capture batches while
//! the organization's catalog version holds); everything here is decided without a database.

use std::collections::HashMap;

use super::attribution::{
    Arrival, AttributionNote, DerivedChannel, SourceFacts, WidgetFacts, derive_channel_on_page,
    resolve_arrival,
};
use super::widget::WidgetVersion;

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    widgets: Vec<WidgetFacts>,
    sources: HashMap<WidgetVersion, Vec<SourceFacts>>,
}

/// Where one arrival is credited, with the names as they are right now (the snapshot), and why
/// a parameter could not be applied, if one could not.
#[derive(Debug, Clone, Copy)]
pub struct Credited<'a> {
    pub widget: &'a WidgetFacts,
    pub source: &'a SourceFacts,
    pub note: Option<AttributionNote>,
}

/// A catalog that breaks its own invariant (every organization has a Primary widget with a
/// system source): a store to report as corrupt, never the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogGap(pub String);

impl Catalog {
    /// The widgets, and each source with the version of the widget it belongs to.
    pub fn new(
        widgets: Vec<WidgetFacts>,
        sources: impl IntoIterator<Item = (WidgetVersion, SourceFacts)>,
    ) -> Self {
        let mut of_widget: HashMap<WidgetVersion, Vec<SourceFacts>> = HashMap::new();
        for (version, source) in sources {
            of_widget.entry(version).or_default().push(source);
        }
        Self {
            widgets,
            sources: of_widget,
        }
    }

    /// Where an arrival is credited (see `attribute`), and for the system source the channel
    /// derived from its page, referrer and UTM tags.
    pub fn resolve(
        &self,
        arrival: &Arrival,
    ) -> Result<(Credited<'_>, Option<DerivedChannel>), CatalogGap> {
        let credited = self.attribute(
            arrival.embedding,
            arrival.v.as_deref(),
            arrival.s.as_deref(),
        )?;
        let derived = credited.source.code.is_system().then(|| {
            derive_channel_on_page(
                &arrival.utm,
                arrival.referrer.as_deref(),
                arrival.page_url.as_deref(),
            )
        });
        Ok((credited, derived))
    }

    /// Applies the arrival rule (`attribution::resolve_arrival`); every organization has a
    /// Primary widget with a system source, so resolution always lands somewhere real.
    pub fn attribute(
        &self,
        embedding: Option<WidgetVersion>,
        v: Option<&str>,
        s: Option<&str>,
    ) -> Result<Credited<'_>, CatalogGap> {
        let resolution = resolve_arrival(
            &self.widgets,
            |w| self.sources_of(w).iter().map(|src| src.code).collect(),
            embedding,
            v,
            s,
        );
        let version = resolution.widget;
        let widget = self
            .widgets
            .iter()
            .find(|w| w.version == version)
            .ok_or_else(|| CatalogGap(format!("organization has no widget {version}")))?;
        let code = resolution.source;
        let source = self
            .sources_of(version)
            .iter()
            .find(|src| src.code == code)
            .ok_or_else(|| CatalogGap(format!("widget {version} has no source {code}")))?;
        Ok(Credited {
            widget,
            source,
            note: resolution.note,
        })
    }

    fn sources_of(&self, version: WidgetVersion) -> &[SourceFacts] {
        self.sources
            .get(&version)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
