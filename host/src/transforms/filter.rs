//! `org.apache.kafka.connect.transforms.Filter`: drops every record it is applied to. Useful only
//! with a predicate (`transforms.f.predicate`), which picks the records to drop.

use crate::api::options::Options;
use crate::api::record::Record;
use crate::api::transform::{Outcome, Transform, TransformError};

use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.Filter",
    has_variants: false,
    keys: &[],
    build,
};

fn build(_: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    Some(Box::new(Filter))
}

#[derive(Debug)]
struct Filter;

impl Transform for Filter {
    fn apply(&self, _: &mut Record) -> Result<Outcome, TransformError> {
        Ok(Outcome::Drop)
    }
}
