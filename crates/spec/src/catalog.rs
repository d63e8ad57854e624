//! Documents from several files together, so references can be followed.
//!
//! `validate` does not require references to resolve: Flagger manifests refer
//! to objects that live in the cluster. Running a canary does, and
//! [`Catalog::resolve_for_run`] says exactly which reference is missing.

use crate::{
    alert::AlertProvider,
    builtin::BuiltinMetric,
    canary::{Alert, Canary, Metric},
    document::Document,
    meta::ObjectReference,
    problem::{Path, Problem},
    template::MetricTemplate,
};

/// All documents of a set of files.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    canaries: Vec<Canary>,
    metric_templates: Vec<MetricTemplate>,
    alert_providers: Vec<AlertProvider>,
}

/// A canary with its references followed, ready to run.
#[derive(Clone, Debug)]
pub struct ResolvedCanary<'a> {
    /// The canary.
    pub canary: &'a Canary,
    /// Its metrics, in order, with where their values come from.
    pub metrics: Vec<ResolvedMetric<'a>>,
    /// Its alerts, in order, with their providers.
    pub alerts: Vec<ResolvedAlert<'a>>,
}

/// A metric and its source.
#[derive(Clone, Debug)]
pub struct ResolvedMetric<'a> {
    /// The entry of `spec.analysis.metrics`.
    pub metric: &'a Metric,
    /// Where its value comes from.
    pub source: MetricSource<'a>,
}

/// Where a metric's value comes from.
#[derive(Clone, Copy, Debug)]
pub enum MetricSource<'a> {
    /// Measured by serin's proxy.
    Builtin(BuiltinMetric),
    /// A `MetricTemplate` query.
    Template(&'a MetricTemplate),
    /// Flagger's deprecated inline Prometheus query (`metrics[].query`).
    InlineQuery(&'a str),
}

/// An alert and its provider.
#[derive(Clone, Debug)]
pub struct ResolvedAlert<'a> {
    /// The entry of `spec.analysis.alerts`.
    pub alert: &'a Alert,
    /// The provider it names.
    pub provider: &'a AlertProvider,
}

// === impl Catalog ===

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog of these documents.
    pub fn from_documents(documents: impl IntoIterator<Item = Document>) -> Self {
        let mut catalog = Self::new();
        catalog.extend(documents);
        catalog
    }

    /// Adds one document.
    pub fn add(&mut self, document: Document) {
        match document {
            Document::Canary(canary) => self.canaries.push(canary),
            Document::MetricTemplate(template) => self.metric_templates.push(template),
            Document::AlertProvider(provider) => self.alert_providers.push(provider),
        }
    }

    /// The canaries, in the order added.
    pub fn canaries(&self) -> &[Canary] {
        &self.canaries
    }

    /// The metric templates, in the order added.
    pub fn metric_templates(&self) -> &[MetricTemplate] {
        &self.metric_templates
    }

    /// The alert providers, in the order added.
    pub fn alert_providers(&self) -> &[AlertProvider] {
        &self.alert_providers
    }

    /// The canary with this name.
    pub fn canary(&self, name: &str) -> Option<&Canary> {
        self.canaries.iter().find(|canary| canary.name() == name)
    }

    /// The template `reference` names, looked up from a canary in `namespace`.
    pub fn metric_template(
        &self,
        reference: &ObjectReference,
        namespace: Option<&str>,
    ) -> Option<&MetricTemplate> {
        find_by_reference(&self.metric_templates, reference, namespace, |template| {
            (template.name(), template.metadata.namespace.as_deref())
        })
    }

    /// The alert provider `reference` names, looked up from a canary in `namespace`.
    pub fn alert_provider(
        &self,
        reference: &ObjectReference,
        namespace: Option<&str>,
    ) -> Option<&AlertProvider> {
        find_by_reference(&self.alert_providers, reference, namespace, |provider| {
            (provider.name(), provider.metadata.namespace.as_deref())
        })
    }

    /// Follows every reference of `canary`, or says which ones lead nowhere,
    /// or lack what running needs outside Kubernetes (an address).
    pub fn resolve_for_run<'a>(
        &'a self,
        canary: &'a Canary,
    ) -> Result<ResolvedCanary<'a>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut metrics = Vec::new();
        let mut alerts = Vec::new();
        let namespace = canary.metadata.namespace.as_deref();
        let analysis_path = Path::root().key("spec").key("analysis");
        let Some(analysis) = &canary.spec.analysis else {
            return Ok(ResolvedCanary {
                canary,
                metrics,
                alerts,
            });
        };

        for (index, metric) in analysis.metrics.iter().enumerate() {
            let path = analysis_path.key("metrics").index(index);
            if let Some(builtin) = metric.builtin() {
                metrics.push(ResolvedMetric {
                    metric,
                    source: MetricSource::Builtin(builtin),
                });
            } else if let Some(reference) = &metric.template_ref {
                match self.metric_template(reference, namespace) {
                    Some(template) => {
                        if template.spec.provider.address.is_none() {
                            problems.push(Problem::new(
                                path.key("templateRef"),
                                format!(
                                    "MetricTemplate {:?} has no spec.provider.address; outside Kubernetes it must give one",
                                    reference.name
                                ),
                            ));
                        }
                        // The web provider's request is its address; others need a query.
                        if template.spec.provider.provider_type != "web"
                            && template
                                .spec
                                .query
                                .as_deref()
                                .is_none_or(|query| query.trim().is_empty())
                        {
                            problems.push(Problem::new(
                                path.key("templateRef"),
                                format!("MetricTemplate {:?} has no spec.query", reference.name),
                            ));
                        }
                        metrics.push(ResolvedMetric {
                            metric,
                            source: MetricSource::Template(template),
                        });
                    }
                    None => problems.push(Problem::new(
                        path.key("templateRef"),
                        format!(
                            "MetricTemplate {} not found in the given files",
                            describe_reference(reference, namespace)
                        ),
                    )),
                }
            } else if let Some(query) = &metric.query {
                metrics.push(ResolvedMetric {
                    metric,
                    source: MetricSource::InlineQuery(query),
                });
            } else {
                problems.push(Problem::new(
                    path.key("templateRef"),
                    format!(
                        "{:?} is not a built-in metric and has no templateRef",
                        metric.name
                    ),
                ));
            }
        }

        for (index, alert) in analysis.alerts.iter().enumerate() {
            let path = analysis_path.key("alerts").index(index).key("providerRef");
            match self.alert_provider(&alert.provider_ref, namespace) {
                Some(provider) => {
                    if provider.spec.address.is_none() {
                        problems.push(Problem::new(
                            path,
                            format!(
                                "AlertProvider {:?} has no spec.address; outside Kubernetes it must give one",
                                alert.provider_ref.name
                            ),
                        ));
                    }
                    alerts.push(ResolvedAlert { alert, provider });
                }
                None => problems.push(Problem::new(
                    path,
                    format!(
                        "AlertProvider {} not found in the given files",
                        describe_reference(&alert.provider_ref, namespace)
                    ),
                )),
            }
        }

        if problems.is_empty() {
            Ok(ResolvedCanary {
                canary,
                metrics,
                alerts,
            })
        } else {
            Err(problems)
        }
    }
}

impl Extend<Document> for Catalog {
    fn extend<I: IntoIterator<Item = Document>>(&mut self, documents: I) {
        for document in documents {
            self.add(document);
        }
    }
}

/// Finds the object a reference names. Outside Kubernetes files often leave
/// namespaces out, so an object without a namespace matches any; an exact
/// namespace match wins over that.
fn find_by_reference<'a, T>(
    objects: &'a [T],
    reference: &ObjectReference,
    referrer_namespace: Option<&str>,
    identity: impl Fn(&T) -> (&str, Option<&str>),
) -> Option<&'a T> {
    let wanted_namespace = reference.namespace.as_deref().or(referrer_namespace);
    let named = || {
        objects
            .iter()
            .filter(|object| identity(object).0 == reference.name)
    };
    named()
        .find(|object| identity(object).1 == wanted_namespace)
        .or_else(|| {
            named().find(|object| {
                let namespace = identity(object).1;
                namespace.is_none() || wanted_namespace.is_none()
            })
        })
}

fn describe_reference(reference: &ObjectReference, referrer_namespace: Option<&str>) -> String {
    match reference.namespace.as_deref().or(referrer_namespace) {
        Some(namespace) => format!("{:?} (namespace {namespace:?})", reference.name),
        None => format!("{:?}", reference.name),
    }
}
