//! Derived features of payment transactions (the seed's transaction stream):
//!
//! - `amount_base`: the amount in the base currency (`rates`: `CUR:rate` pairs),
//! - `amount_log`: ln(1 + `amount_base`),
//! - `hour_of_day` (0-23, UTC) and `day_of_week` (1 = Monday) of the event time,
//! - `is_weekend`,
//! - `amount_bucket`: which of `buckets` (ascending upper bounds) the base amount falls in,
//!   e.g. `10-50` or `1000+`.
//!
//! The event time is `time.field` (RFC 3339 text or epoch milliseconds), else the record's
//! timestamp. Output field names get `prefix` in front. A record without a numeric amount or
//! with a currency that has no rate goes to the dead-letter queue, saying which.

use chrono::{DateTime, Datelike, Timelike, Utc};
use headwater_sdk::prelude::*;

const PARAMS: &[Param] = &[
    Param::optional(
        "amount.field",
        ParamType::String,
        "amount",
        "Field holding the amount.",
    ),
    Param::optional(
        "currency.field",
        ParamType::String,
        "currency",
        "Field holding the ISO currency code.",
    ),
    Param::optional(
        "time.field",
        ParamType::String,
        "ts",
        "Field holding the event time (RFC 3339 or epoch ms); the record timestamp when absent.",
    ),
    Param::optional(
        "rates",
        ParamType::List,
        "USD:1.0,EUR:1.08,GBP:1.27",
        "Exchange rates to the base currency, as CUR:rate pairs.",
    ),
    Param::optional(
        "buckets",
        ParamType::List,
        "10,50,200,1000",
        "Ascending upper bounds of the amount buckets (in the base currency).",
    ),
    Param::optional(
        "prefix",
        ParamType::String,
        "",
        "Prefix of the output field names.",
    ),
];

struct Settings {
    amount: String,
    currency: String,
    time: String,
    rates: Vec<(String, f64)>,
    buckets: Vec<f64>,
    labels: Vec<String>,
    prefix: String,
}

fn settings(config: Config) -> Result<Settings> {
    let rates = config
        .list("rates")
        .into_iter()
        .map(|pair| {
            let (cur, rate) = pair
                .split_once(':')
                .ok_or_else(|| Error::new(format!("rates: {pair:?} is not CUR:rate")))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| Error::new(format!("rates: {rate:?} is not a number")))?;
            Ok((cur.trim().to_ascii_uppercase(), rate))
        })
        .collect::<Result<Vec<_>>>()?;
    let buckets = config
        .list("buckets")
        .into_iter()
        .map(|b| {
            b.parse::<f64>()
                .map_err(|_| Error::new(format!("buckets: {b:?} is not a number")))
        })
        .collect::<Result<Vec<_>>>()?;
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::new("buckets must be strictly ascending"));
    }
    let fmt = |b: f64| format!("{b}");
    let mut labels = Vec::with_capacity(buckets.len() + 1);
    let mut low = 0.0;
    for &b in &buckets {
        labels.push(format!("{}-{}", fmt(low), fmt(b)));
        low = b;
    }
    labels.push(format!("{}+", fmt(low)));
    Ok(Settings {
        amount: config.string("amount.field").to_owned(),
        currency: config.string("currency.field").to_owned(),
        time: config.string("time.field").to_owned(),
        rates,
        buckets,
        labels,
        prefix: config.string("prefix").to_owned(),
    })
}

fn event_time(rec: &Record, field: &str) -> Result<Option<DateTime<Utc>>> {
    match rec.get(field) {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| Error::new(format!("`{field}` is not an RFC 3339 time ({s:?}): {e}"))),
        Some(Value::Number(n)) => Ok(n.as_i64().and_then(DateTime::from_timestamp_millis)),
        _ => Ok(rec.timestamp().and_then(DateTime::from_timestamp_millis)),
    }
}

#[transform(params = PARAMS, init = settings)]
fn features(rec: &Record, out: &mut Emitter, s: &Settings) -> Result<()> {
    let amount = rec.require_f64(&s.amount)?;
    let currency = rec.get_str(&s.currency).unwrap_or("").to_ascii_uppercase();
    let rate = s
        .rates
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            Error::new(format!(
                "no exchange rate for currency {currency:?}; add it to `rates`"
            ))
        })?;
    let base = (amount * rate * 100.0).round() / 100.0;
    let bucket = s
        .buckets
        .iter()
        .position(|&b| base < b)
        .unwrap_or(s.buckets.len());
    let mut value = rec.json()?.clone();
    let Some(fields) = value.as_object_mut() else {
        return Err(Error::new("the value is not a JSON object"));
    };
    let p = &s.prefix;
    fields.insert(format!("{p}amount_base"), json!(base));
    fields.insert(format!("{p}amount_log"), json!((1.0 + base.max(0.0)).ln()));
    fields.insert(format!("{p}amount_bucket"), json!(s.labels[bucket]));
    if let Some(t) = event_time(rec, &s.time)? {
        let weekday = t.weekday().number_from_monday();
        fields.insert(format!("{p}hour_of_day"), json!(t.hour()));
        fields.insert(format!("{p}day_of_week"), json!(weekday));
        fields.insert(format!("{p}is_weekend"), json!(weekday >= 6));
    }
    metrics::counter("features_computed", 1.0, &[("currency", &currency)]);
    out.emit(rec.output().value_json(&value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(value: &str) -> Result<Value> {
        let s = settings(Config::parse(PARAMS, vec![]).unwrap()).unwrap();
        let rec = Record::for_test("t", None, Some(value.as_bytes()));
        let mut out = Emitter::new();
        features(&rec, &mut out, &s)?;
        Ok(out.value_json(0).unwrap())
    }

    #[test]
    fn derives_every_feature() {
        let v = run(r#"{"amount": 100, "currency": "EUR", "ts": "2024-01-06T13:05:00Z"}"#).unwrap();
        assert_eq!(v["amount_base"], json!(108.0));
        assert_eq!(v["amount_bucket"], json!("50-200"));
        assert_eq!(v["hour_of_day"], json!(13));
        assert_eq!(v["day_of_week"], json!(6));
        assert_eq!(v["is_weekend"], json!(true));
        assert!((v["amount_log"].as_f64().unwrap() - 109f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn unknown_currency_names_the_fix() {
        let e = run(r#"{"amount": 1, "currency": "JPY"}"#).unwrap_err();
        assert_eq!(
            e.message(),
            "no exchange rate for currency \"JPY\"; add it to `rates`"
        );
    }
}
