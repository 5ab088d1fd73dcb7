//! Profile features of a user, from a users row (e.g. PostgreSQL CDC unwrapped by
//! `ExtractNewRecordState`), for the online store:
//!
//! - `email_domain`: the lowercased domain of `email.field`,
//! - `email_is_free`: whether that domain is a free-mail provider (`free.domains`),
//! - `account_age_days`: whole days from `created.field` (RFC 3339 text, as Debezium's
//!   `ZonedTimestamp`, or epoch milliseconds) to the record's event time.
//!
//! Tombstones (a deleted user) pass through unchanged, so the sink deletes the entity. A row
//! without a usable email or creation time goes to the dead-letter queue, saying which field.

use chrono::{DateTime, Utc};
use headwater_sdk::prelude::*;

const PARAMS: &[Param] = &[
    Param::optional(
        "email.field",
        ParamType::String,
        "email",
        "Field holding the email address.",
    ),
    Param::optional(
        "created.field",
        ParamType::String,
        "created_at",
        "Field holding the account creation time (RFC 3339 or epoch ms).",
    ),
    Param::optional(
        "free.domains",
        ParamType::List,
        "gmail.com,yahoo.com,outlook.com,hotmail.com,icloud.com,proton.me",
        "Email domains counted as free-mail providers.",
    ),
];

struct Settings {
    email: String,
    created: String,
    free_domains: Vec<String>,
}

fn settings(config: Config) -> Result<Settings> {
    Ok(Settings {
        email: config.string("email.field").to_owned(),
        created: config.string("created.field").to_owned(),
        free_domains: config
            .list("free.domains")
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect(),
    })
}

/// Epoch milliseconds of a timestamp field: RFC 3339 text or a number.
fn epoch_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc).timestamp_millis()),
        _ => None,
    }
}

const DAY_MS: i64 = 86_400_000;

/// Now, for records without a timestamp (WASI gives components the host's clock).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[transform(params = PARAMS, init = settings)]
fn user_features(rec: &Record, out: &mut Emitter, s: &Settings) -> Result<()> {
    if rec.value().is_none() {
        out.forward(rec);
        return Ok(());
    }
    let email = rec.get_str(&s.email).ok_or_else(|| {
        Error::new(format!(
            "field {:?} must hold the email address as text",
            s.email
        ))
    })?;
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::new(format!("{:?} is not an email address", email)))?;
    let created = rec.get(&s.created).and_then(epoch_ms).ok_or_else(|| {
        Error::new(format!(
            "field {:?} must hold the creation time (RFC 3339 or epoch ms)",
            s.created
        ))
    })?;
    let now = rec.timestamp().unwrap_or_else(wall_clock_ms);
    let mut value = rec.json()?.clone();
    let Some(fields) = value.as_object_mut() else {
        return Err(Error::new("the value is not a JSON object"));
    };
    fields.insert(
        "email_is_free".into(),
        json!(s.free_domains.contains(&domain)),
    );
    fields.insert("email_domain".into(), json!(domain));
    fields.insert(
        "account_age_days".into(),
        json!((now - created).max(0) / DAY_MS),
    );
    out.emit(rec.output().value_json(&value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(value: Option<&str>) -> Result<Emitter> {
        let s = settings(Config::parse(PARAMS, vec![]).unwrap()).unwrap();
        let rec = Record::for_test("users", Some(b"{\"id\":1}"), value.map(str::as_bytes));
        let mut out = Emitter::new();
        user_features(&rec, &mut out, &s)?;
        Ok(out)
    }

    #[test]
    fn derives_the_profile_features() {
        let created = wall_clock_ms() - 3 * DAY_MS - 1000;
        let out = run(Some(&format!(
            r#"{{"id": 1, "email": "Ada@Example.COM", "created_at": {created}}}"#
        )))
        .unwrap();
        let v = out.value_json(0).unwrap();
        assert_eq!(v["email_domain"], json!("example.com"));
        assert_eq!(v["email_is_free"], json!(false));
        assert_eq!(v["account_age_days"], json!(3));
        assert_eq!(v["id"], json!(1));
        let v = run(Some(
            r#"{"email": "x@gmail.com", "created_at": "2020-01-01T00:00:00Z"}"#,
        ))
        .unwrap()
        .value_json(0)
        .unwrap();
        assert_eq!(v["email_is_free"], json!(true));
        assert!(v["account_age_days"].as_i64().unwrap() > 2000);
    }

    #[test]
    fn tombstones_pass_and_bad_rows_name_the_field() {
        let out = run(None).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.value_json(0), None);
        let e = run(Some(r#"{"email": "nobody", "created_at": 0}"#)).unwrap_err();
        assert_eq!(e.message(), "\"nobody\" is not an email address");
        let e = run(Some(r#"{"email": "a@b.c"}"#)).unwrap_err();
        assert!(e.message().contains("\"created_at\""), "{}", e.message());
    }
}
