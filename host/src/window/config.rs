//! `headwater.window.Aggregate` configuration (`transforms.<alias>.*`).

use crate::api::options::{ConfigKey, KeyType, Options};

use super::accumulator::Function;

pub const GROUP_BY: ConfigKey = ConfigKey::new(
    "group.by",
    KeyType::List,
    "Value fields whose values identify a group (e.g. `user_id`); each group has its own \
     windows. Empty: one group for all records.",
)
.with_default("");

pub const GROUP_BY_PARTITIONED: ConfigKey = ConfigKey::new(
    "group.by.partitioned",
    KeyType::Boolean,
    "The input's Kafka partitions hold whole groups: its producers key records by the \
     `group.by` fields (a topic keyed by `user_id`, grouped by `user_id`). A sink reading \
     Kafka with `tasks.max` > 1 keeps each partition's windows apart (the unit a host owns): \
     with this set it windows the topic's partitions as they are (Kafka Streams' \
     `groupByKey`, Flink's `reinterpretAsKeyedStream`); without it, it first re-keys the \
     records by group through its repartition topic (Kafka Streams' `groupBy`). Headwater \
     cannot check it: a group whose records sit in several partitions gets one partial \
     result per partition.",
)
.with_default("false");

pub const WINDOW_TYPE: ConfigKey = ConfigKey::new(
    "window.type",
    KeyType::String,
    "`tumbling` (fixed, back to back), `hopping` (fixed size, starting every \
     `window.advance.ms`, so a record may fall in several) or `session` (a group's records \
     less than `window.gap.ms` apart, however long).",
)
.with_default("tumbling")
.one_of(&["tumbling", "hopping", "session"]);

pub const WINDOW_SIZE: ConfigKey = ConfigKey::new(
    "window.size.ms",
    KeyType::Long,
    "Window length in milliseconds (300000 for 5 minutes, 86400000 for a UTC day); tumbling \
     and hopping windows.",
);

pub const WINDOW_GAP: ConfigKey = ConfigKey::new(
    "window.gap.ms",
    KeyType::Long,
    "Session windows: a session ends once its group has had no record for this long.",
);

pub const WINDOW_ADVANCE: ConfigKey = ConfigKey::new(
    "window.advance.ms",
    KeyType::Long,
    "Hopping windows: milliseconds between window starts; must divide `window.size.ms`.",
);

pub const TIME_FIELD: ConfigKey = ConfigKey::new(
    "time.field",
    KeyType::String,
    "Value field holding the event time (epoch milliseconds or ISO-8601). Default: the \
     record's timestamp.",
);

pub const TIME_KIND: ConfigKey = ConfigKey::new(
    "time.kind",
    KeyType::String,
    "`event` (windows by the records' event time) or `processing` (by the time Headwater \
     handles them).",
)
.with_default("event")
.one_of(&["event", "processing"]);

pub const WATERMARK_DELAY: ConfigKey = ConfigKey::new(
    "watermark.delay.ms",
    KeyType::Long,
    "How far behind the newest event time the watermark stays (Flink SQL's `WATERMARK FOR t AS \
     t - INTERVAL ...`): a window fires, and later records for it are late, once the \
     watermark reaches its last millisecond (`end - 1`, Flink's `maxTimestamp`), so \
     out-of-order records up to this much late still count.",
)
.with_default("0");

pub const WATERMARK_IDLE_TIMEOUT: ConfigKey = ConfigKey::new(
    "watermark.idle.timeout.ms",
    KeyType::Long,
    "In a sink connector, each input (a Kafka partition, a local source) has its own watermark \
     and the step's watermark is their minimum (Flink's rule), so a fast input never makes a \
     slow one's records late. An input without records for this long (processing time) stops \
     holding the watermark back until it has records again (Flink's `withIdleness`). 0: an \
     idle input holds it back for ever (Flink's default).",
)
.with_default("30000");

pub const ALLOWED_LATENESS: ConfigKey = ConfigKey::new(
    "allowed.lateness.ms",
    KeyType::Long,
    "How long a closed window is kept: a late record within it updates the window and emits \
     it again (an updated result for the same window).",
)
.with_default("0");

pub const LATE_RECORDS: ConfigKey = ConfigKey::new(
    "late.records",
    KeyType::String,
    "What happens to a record whose windows are all closed and purged: `drop` (counted in \
     the dropped metric), `dlq` (a record error, handled by `errors.tolerance` and the \
     dead-letter queue) or `topic` (passed on unchanged to `late.topic`).",
)
.with_default("drop")
.one_of(&["drop", "dlq", "topic"]);

pub const LATE_TOPIC: ConfigKey = ConfigKey::new(
    "late.topic",
    KeyType::String,
    "With `late.records=topic`: the topic late records are sent to.",
);

pub const AGGREGATES: ConfigKey = ConfigKey::new(
    "aggregates",
    KeyType::List,
    "The features to compute, each `name:function(field)` (or `name:count`): count, \
     count_distinct, approx_count_distinct (HyperLogLog, ~2% error, bounded memory), sum, avg, \
     min, max, first, last. E.g. `click_count_5min:count,unique_pages_5min:count_distinct(page)`.",
)
.required();

pub const EMIT_EARLY: ConfigKey = ConfigKey::new(
    "emit.early.interval.ms",
    KeyType::Long,
    "Also emit open windows that changed, at most this often (processing time), before they \
     close. 0: emit only when a window closes.",
)
.with_default("0");

pub const OUTPUT_TOPIC: ConfigKey = ConfigKey::new(
    "output.topic",
    KeyType::String,
    "Topic of the window results. Default: the topic of the record that closed the window.",
);

pub const START_FIELD: ConfigKey = ConfigKey::new(
    "window.start.field",
    KeyType::String,
    "Output field of the window start (epoch milliseconds).",
)
.with_default("window_start");

pub const END_FIELD: ConfigKey = ConfigKey::new(
    "window.end.field",
    KeyType::String,
    "Output field of the window end (epoch milliseconds, exclusive).",
)
.with_default("window_end");

pub const CACHE_ENTRIES: ConfigKey = ConfigKey::new(
    "state.cache.max.entries",
    KeyType::Long,
    "Windows (group × window) kept decoded in memory; beyond it, state spills to the \
     connector's state store on disk, which bounds memory whatever the number of groups. With \
     state per input partition (`tasks.max` > 1) the bound applies to each partition a host \
     owns.",
)
.with_default("100000");

pub const KEYS: &[ConfigKey] = &[
    GROUP_BY,
    GROUP_BY_PARTITIONED,
    WINDOW_TYPE,
    WINDOW_SIZE,
    WINDOW_ADVANCE,
    WINDOW_GAP,
    TIME_FIELD,
    TIME_KIND,
    WATERMARK_DELAY,
    WATERMARK_IDLE_TIMEOUT,
    ALLOWED_LATENESS,
    LATE_RECORDS,
    LATE_TOPIC,
    AGGREGATES,
    EMIT_EARLY,
    OUTPUT_TOPIC,
    START_FIELD,
    END_FIELD,
    CACHE_ENTRIES,
];

/// One output feature: `name:function(field)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub function: Function,
    pub field: Option<String>,
}

/// What to do with records too late for any kept window.
#[derive(Debug, Clone, PartialEq)]
pub enum LatePolicy {
    Drop,
    DeadLetter,
    Topic(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateConfig {
    pub group_by: Vec<String>,
    /// `group.by.partitioned`: the input's partitions hold whole groups.
    pub group_by_partitioned: bool,
    pub size: i64,
    /// Equal to `size` for tumbling windows.
    pub advance: i64,
    /// Session windows: the inactivity gap that ends a session (`size` is unused).
    pub session_gap: Option<i64>,
    pub time_field: Option<String>,
    pub processing_time: bool,
    pub watermark_delay: i64,
    /// Milliseconds without records after which an input stops holding the watermark back;
    /// 0: never.
    pub idle_timeout_ms: u64,
    pub allowed_lateness: i64,
    pub late: LatePolicy,
    pub features: Vec<Feature>,
    pub emit_early_ms: u64,
    pub output_topic: Option<String>,
    pub start_field: String,
    pub end_field: String,
    pub cache_entries: usize,
}

/// Why an `aggregates` entry cannot be read; the message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct BadFeature(String);

fn parse_feature(spec: &str) -> Result<Feature, BadFeature> {
    let (name, call) = spec
        .split_once(':')
        .ok_or_else(|| BadFeature(format!("{spec:?} is not `name:function(field)`")))?;
    let call = call.trim();
    let (function, field) = match call.split_once('(') {
        Some((f, rest)) => {
            let field = rest
                .strip_suffix(')')
                .ok_or_else(|| BadFeature(format!("{spec:?}: missing `)`")))?;
            (f.trim(), Some(field.trim().to_owned()))
        }
        None => (call, None),
    };
    let function = Function::parse(function).ok_or_else(|| {
        BadFeature(format!(
            "{spec:?}: unknown function {function:?}; known: {}",
            Function::NAMES
        ))
    })?;
    match (function.needs_field(), &field) {
        (true, None) => Err(BadFeature(format!(
            "{spec:?}: {function:?} needs a field, e.g. sum(amount)"
        ))),
        (false, Some(_)) => Err(BadFeature(format!("{spec:?}: count takes no field"))),
        _ => Ok(Feature {
            name: name.trim().to_owned(),
            function,
            field: field.filter(|f| !f.is_empty()),
        }),
    }
}

impl AggregateConfig {
    /// Reads the step's options; problems are recorded in `options`. `per_partition`: the
    /// step runs in a chain of one input partition (see `GROUP_BY_PARTITIONED`); `kafka`: a
    /// repartition topic can re-key its input when the partitions do not hold whole groups.
    pub fn parse(options: &mut Options, per_partition: bool, kafka: bool) -> Option<Self> {
        let group_by = options.list(&GROUP_BY);
        let partitioned = options.bool(&GROUP_BY_PARTITIONED).unwrap_or(false);
        if partitioned && group_by.is_empty() {
            options.issue(
                GROUP_BY_PARTITIONED.name,
                "without group.by every record is in one group, which no partitioning holds whole",
            );
            return None;
        }
        if per_partition && !partitioned && !kafka {
            options.issue(
                GROUP_BY_PARTITIONED.name,
                format!(
                    "this sink reads its topics' partitions in parallel (tasks.max > 1) and keeps \
                     each partition's windows apart, so a group must sit in one partition: set \
                     group.by.partitioned=true if the topics are keyed by the group.by fields \
                     ({}), or tasks.max=1 to window every partition in one task; grouping by \
                     other fields with tasks.max > 1 needs a repartition topic, and so Kafka \
                     (`[kafka] bootstrap_servers` in the worker config)",
                    if group_by.is_empty() {
                        "none: one group".to_owned()
                    } else {
                        group_by.join(", ")
                    }
                ),
            );
            return None;
        }
        let kind = options.choice(&WINDOW_TYPE)?;
        let hopping = kind == "hopping";
        let session_gap = if kind == "session" {
            match options.i64(&WINDOW_GAP) {
                Some(gap) if gap > 0 => Some(gap),
                _ => {
                    options.issue(
                        WINDOW_GAP.name,
                        "session windows need a positive window.gap.ms",
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let size = match session_gap {
            Some(gap) => gap,
            None => {
                let Some(size) = options.i64(&WINDOW_SIZE) else {
                    options.issue(WINDOW_SIZE.name, "tumbling and hopping windows need it");
                    return None;
                };
                size
            }
        };
        if size <= 0 {
            options.issue(
                WINDOW_SIZE.name,
                "must be a positive number of milliseconds",
            );
            return None;
        }
        let advance = if hopping {
            let Some(advance) = options.i64(&WINDOW_ADVANCE) else {
                options.issue(WINDOW_ADVANCE.name, "hopping windows need it");
                return None;
            };
            if advance <= 0 || size % advance != 0 {
                options.issue(
                    WINDOW_ADVANCE.name,
                    format!("must be positive and divide window.size.ms ({size})"),
                );
                return None;
            }
            advance
        } else {
            size
        };
        let mut features = Vec::new();
        for spec in options.list(&AGGREGATES) {
            match parse_feature(&spec) {
                Ok(f) => features.push(f),
                Err(e) => options.issue(AGGREGATES.name, e.to_string()),
            }
        }
        if features.is_empty() {
            options.issue(AGGREGATES.name, "name at least one feature");
            return None;
        }
        let late = match options.choice(&LATE_RECORDS)?.as_str() {
            "dlq" => LatePolicy::DeadLetter,
            "topic" => match options.string(&LATE_TOPIC) {
                Some(t) => LatePolicy::Topic(t),
                None => {
                    options.issue(LATE_TOPIC.name, "late.records=topic needs it");
                    return None;
                }
            },
            _ => LatePolicy::Drop,
        };
        let non_negative = |options: &mut Options, key: &ConfigKey| -> Option<i64> {
            let v = options.i64(key)?;
            if v < 0 {
                options.issue(key.name, "must not be negative");
                return None;
            }
            Some(v)
        };
        let start_field = options.string(&START_FIELD)?;
        let end_field = options.string(&END_FIELD)?;
        // Each result field needs its own name: a feature named like a group field (or the
        // window bounds) would overwrite it.
        let outputs = group_by
            .iter()
            .map(|g| (g.as_str(), GROUP_BY.name))
            .chain([
                (start_field.as_str(), START_FIELD.name),
                (end_field.as_str(), END_FIELD.name),
            ])
            .chain(features.iter().map(|f| (f.name.as_str(), AGGREGATES.name)));
        let mut named_by = std::collections::BTreeMap::new();
        for (name, key) in outputs {
            if let Some(first) = named_by.insert(name, key) {
                options.issue(
                    key,
                    format!(
                        "result field {name:?} is also named by {first}: give each group \
                         field, window bound and feature its own name"
                    ),
                );
                return None;
            }
        }
        Some(Self {
            group_by,
            group_by_partitioned: partitioned,
            size,
            advance,
            session_gap,
            time_field: options.string(&TIME_FIELD),
            processing_time: options.choice(&TIME_KIND)? == "processing",
            watermark_delay: non_negative(options, &WATERMARK_DELAY)?,
            idle_timeout_ms: non_negative(options, &WATERMARK_IDLE_TIMEOUT)? as u64,
            allowed_lateness: non_negative(options, &ALLOWED_LATENESS)?,
            late,
            features,
            emit_early_ms: non_negative(options, &EMIT_EARLY)? as u64,
            output_topic: options.string(&OUTPUT_TOPIC),
            start_field,
            end_field,
            cache_entries: non_negative(options, &CACHE_ENTRIES)? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(pairs: &[(&str, &str)]) -> Vec<String> {
        let map = [
            ("group.by", "user_id"),
            ("window.size.ms", "300000"),
            ("aggregates", "n:count"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let mut options = Options::new(map);
        let parsed = AggregateConfig::parse(&mut options, false, false);
        let issues: Vec<String> = options
            .issues()
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect();
        assert_eq!(parsed.is_some(), issues.is_empty(), "{issues:?}");
        issues
    }

    #[test]
    fn a_window_per_partition_needs_groups_the_partitions_hold() {
        let parse = |pairs: &[(&str, &str)], per_partition: bool| {
            let map = [("window.size.ms", "300000"), ("aggregates", "n:count")]
                .iter()
                .chain(pairs)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let mut options = Options::new(map);
            let parsed = AggregateConfig::parse(&mut options, per_partition, false);
            (parsed.is_some(), options.issues().to_vec())
        };
        let (ok, issues) = parse(&[("group.by", "user_id")], true);
        assert!(!ok);
        assert_eq!(issues[0].key, "group.by.partitioned");
        assert!(issues[0].message.contains("(user_id)"), "{issues:?}");
        let keyed = [("group.by", "user_id"), ("group.by.partitioned", "true")];
        assert!(parse(&keyed, true).0);
        // One reader reads every partition: any grouping works.
        assert!(parse(&[("group.by", "user_id")], false).0);
        let (ok, issues) = parse(&[("group.by.partitioned", "true")], false);
        assert!(!ok);
        assert!(issues[0].message.contains("one group"), "{issues:?}");
    }

    #[test]
    fn result_fields_need_distinct_names() {
        assert!(issues_of(&[]).is_empty());
        let clash = issues_of(&[("aggregates", "user_id:count")]);
        assert_eq!(
            clash,
            [
                "aggregates: result field \"user_id\" is also named by group.by: give each \
              group field, window bound and feature its own name"
            ]
        );
        let bound = issues_of(&[("window.end.field", "n")]);
        assert!(
            bound[0]
                .starts_with("aggregates: result field \"n\" is also named by window.end.field"),
            "{bound:?}"
        );
        assert!(issues_of(&[("group.by", "a,a")])[0].starts_with("group.by: result field \"a\""));
    }

    #[test]
    fn features_parse_and_errors_say_what_is_expected() {
        assert_eq!(
            parse_feature("unique_pages_5min:count_distinct(page)").unwrap(),
            Feature {
                name: "unique_pages_5min".into(),
                function: Function::CountDistinct,
                field: Some("page".into())
            }
        );
        assert_eq!(parse_feature("n:count").unwrap().field, None);
        assert!(
            parse_feature("x:median(a)")
                .unwrap_err()
                .0
                .contains("known: count")
        );
        assert!(
            parse_feature("s:sum")
                .unwrap_err()
                .0
                .contains("needs a field")
        );
    }
}
