//! Per-user rolling transaction aggregates, a stateful transform: every transaction leaves
//! with the user's count, sum and max of `amount` over the `window.ms` (default 24 hours) up to
//! and including its own time:
//!
//! - `tx_count_24h`, `amount_sum_24h`, `amount_max_24h` (names from `prefix` + those).
//!
//! Each user's recent transactions are kept in durable state (`headwater_sdk::state`): after a
//! crash the host restores them as of the last checkpoint and replays the records since, so no
//! transaction is counted twice. A timer per user deletes the state of users idle for a whole
//! window, so state stays as large as the set of active users.

use headwater_sdk::prelude::*;

const PARAMS: &[Param] = &[
    Param::optional(
        "user.field",
        ParamType::String,
        "user_id",
        "Field identifying the user.",
    ),
    Param::optional(
        "amount.field",
        ParamType::String,
        "amount",
        "Field holding the amount.",
    ),
    Param::optional(
        "window.ms",
        ParamType::Integer,
        "86400000",
        "Length of the rolling window in milliseconds.",
    ),
    Param::optional(
        "prefix",
        ParamType::String,
        "",
        "Prefix of the output field names.",
    ),
];

struct Settings {
    user: String,
    amount: String,
    window: i64,
    prefix: String,
}

fn settings(config: Config) -> Result<Settings> {
    let window = config.integer("window.ms")?;
    if window <= 0 {
        return Err(Error::new("parameter `window.ms` must be positive"));
    }
    Ok(Settings {
        user: config.string("user.field").to_owned(),
        amount: config.string("amount.field").to_owned(),
        window,
        prefix: config.string("prefix").to_owned(),
    })
}

/// A user's recent transactions: (time, amount).
type Recent = Vec<(i64, f64)>;

/// A user's state: recent transactions and the time its expiry timer is set for.
fn load(user: &str) -> Result<(Recent, Option<i64>)> {
    let Some(v) = state::get_json(user)? else {
        return Ok((Vec::new(), None));
    };
    let events = v["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e[0].as_i64()?, e[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok((events, v["expires"].as_i64()))
}

/// Drops the state of users whose expiry timer the watermark passed.
fn expire_idle_users() {
    for (_, user) in state::timers::due() {
        state::delete(&user);
    }
}

#[transform(params = PARAMS, init = settings, stateful = true)]
fn rolling_aggregate(rec: &Record, out: &mut Emitter, s: &Settings) -> Result<()> {
    expire_idle_users();
    let user = match rec.require(&s.user)? {
        Value::String(u) => u.clone(),
        other => other.to_string(),
    };
    let amount = rec.require_f64(&s.amount)?;
    let t = rec.timestamp().ok_or_else(|| {
        Error::new("the record has no timestamp (set the source's timestamp.field)")
    })?;
    let (mut events, expires) = load(&user)?;
    events.push((t, amount));
    let newest = events.iter().map(|e| e.0).max().unwrap_or(t);
    events.retain(|(at, _)| *at > newest - s.window);
    let current: Vec<f64> = events
        .iter()
        .filter(|(at, _)| *at > t - s.window && *at <= t)
        .map(|e| e.1)
        .collect();
    let expiry = newest + s.window;
    if expires != Some(expiry) {
        if let Some(old) = expires {
            state::timers::cancel(old, user.as_bytes());
        }
        state::timers::set(expiry, user.as_bytes());
    }
    let pairs: Vec<Value> = events.iter().map(|(at, a)| json!([at, a])).collect();
    state::put_json(&user, &json!({"events": pairs, "expires": expiry}));

    let mut value = rec.json()?.clone();
    let Some(fields) = value.as_object_mut() else {
        return Err(Error::new("the value is not a JSON object"));
    };
    let p = &s.prefix;
    fields.insert(format!("{p}tx_count_24h"), json!(current.len()));
    fields.insert(
        format!("{p}amount_sum_24h"),
        json!(current.iter().sum::<f64>()),
    );
    fields.insert(
        format!("{p}amount_max_24h"),
        json!(current.iter().cloned().fold(f64::MIN, f64::max)),
    );
    out.emit(rec.output().value_json(&value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &Settings, user: &str, amount: f64, ts: i64) -> Value {
        let value = json!({"user_id": user, "amount": amount}).to_string();
        let rec = Record::for_test("tx", None, Some(value.as_bytes())).with_timestamp(ts);
        let mut out = Emitter::new();
        rolling_aggregate(&rec, &mut out, s).unwrap();
        out.value_json(0).unwrap()
    }

    #[test]
    fn aggregates_roll_and_idle_users_expire() {
        let s = settings(Config::parse(PARAMS, vec![("window.ms".into(), "1000".into())]).unwrap())
            .unwrap();
        assert_eq!(run(&s, "a", 5.0, 100)["tx_count_24h"], json!(1));
        let v = run(&s, "a", 7.0, 600);
        assert_eq!(
            (v["tx_count_24h"].clone(), v["amount_sum_24h"].clone()),
            (json!(2), json!(12.0))
        );
        // 100 is out of the window ending at 1200.
        let v = run(&s, "a", 1.0, 1200);
        assert_eq!(
            (v["tx_count_24h"].clone(), v["amount_max_24h"].clone()),
            (json!(2), json!(7.0))
        );
        assert!(state::get(b"a").is_some());
        headwater_sdk::rt::set_test_watermark(2300);
        run(&s, "b", 1.0, 2300);
        assert!(
            state::get(b"a").is_none(),
            "idle for a whole window: expired"
        );
    }
}
