//! Column types and values against what Debezium writes for them.

use super::text::*;
use super::values::*;
use super::*;

const MODES: Modes = Modes {
    decimal: DecimalMode::Precise,
    time: TimePrecisionMode::Adaptive,
    binary: BinaryMode::Bytes,
    interval: IntervalMode::Numeric,
};

#[test]
fn decimals_match_debeziums_golden_values() {
    let fixed = Kind::Decimal {
        precision: 12,
        scale: 2,
    };
    assert_eq!(convert(&fixed, &MODES, "1234.56").unwrap(), json!("AeJA"));
    assert_eq!(convert(&fixed, &MODES, "-0.50").unwrap(), json!("zg=="));
    assert_eq!(convert(&fixed, &MODES, "2000.00").unwrap(), json!("Aw1A"));
    let var = Kind::VariableDecimal;
    assert_eq!(
        convert(&var, &MODES, "3.14159").unwrap(),
        json!({"scale": 5, "value": "BMsv"})
    );
    assert_eq!(
        convert(&var, &MODES, "12345678901234567890.123456789").unwrap(),
        json!({"scale": 9, "value": "J+QbMka+ybFuOYEV"})
    );
    assert_eq!(
        convert(&var, &MODES, "-0.00000000015").unwrap(),
        json!({"scale": 11, "value": "8Q=="})
    );
    assert_eq!(
        convert(&var, &MODES, "0").unwrap(),
        json!({"scale": 0, "value": "AA=="})
    );
    assert_eq!(twos_complement("128", true), vec![0x80]);
    // The zero of a NOT NULL column an old-key tuple leaves out keeps the column's form.
    assert_eq!(zero(&fixed, &MODES), json!("AA=="));
    assert_eq!(zero(&var, &MODES), json!({"scale": 0, "value": "AA=="}));
    assert_eq!(twos_complement("129", true), vec![0xff, 0x7f]);
    assert_eq!(twos_complement("128", false), vec![0x00, 0x80]);
}

#[test]
fn times_and_zones() {
    let tz = Kind::TimestampTz { precision: 6 };
    assert_eq!(
        convert(&tz, &MODES, "1999-12-31 23:59:59+05:30").unwrap(),
        json!("1999-12-31T18:29:59.000000Z")
    );
    assert_eq!(
        convert(&tz, &MODES, "2025-02-28 23:59:59.999999-08").unwrap(),
        json!("2025-03-01T07:59:59.999999Z")
    );
    assert_eq!(
        convert(&Kind::Date, &MODES, "1970-01-02").unwrap(),
        json!(1)
    );
    assert_eq!(
        convert(&Kind::Date, &MODES, "1969-12-31").unwrap(),
        json!(-1)
    );
    let ts = Kind::Timestamp { precision: 6 };
    assert_eq!(
        convert(&ts, &MODES, "1970-01-01 00:00:01.5").unwrap(),
        json!(1_500_000)
    );
    let ms = Kind::Time { precision: 3 };
    assert_eq!(
        convert(&ms, &MODES, "01:00:00.25").unwrap(),
        json!(3_600_250)
    );
    assert_eq!(
        convert(&Kind::Interval, &MODES, "P1DT1H").unwrap(),
        json!(90_000_000_000i64)
    );
}

#[test]
fn arrays_with_quotes_and_nulls() {
    assert_eq!(
        parse_array(r#"{"with space","with,comma",NULL}"#).unwrap(),
        vec![Some("with space".into()), Some("with,comma".into()), None]
    );
    assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
    let ints = Kind::Array(Box::new(Kind::Int32));
    assert_eq!(
        convert(&ints, &MODES, "{4,NULL}").unwrap(),
        json!([4, null])
    );
    assert!(convert(&ints, &MODES, "{x}").is_err());
}

#[test]
fn bits_hstores_and_points_are_written_as_debezium_writes_them() {
    // Values from host/testdata/cdc/shapes.jsonl (Debezium 3.6).
    let bits = |text: &str| convert(&Kind::Bits { length: 12 }, &MODES, text).unwrap();
    assert_eq!(bits("101"), json!("BQ=="));
    assert_eq!(bits("101100111000"), json!("OAs="));
    assert_eq!(bits("000000000001"), json!("AQ=="));
    assert_eq!(bits(""), json!(""));
    assert_eq!(
        bits("000"),
        json!(""),
        "no trailing zero bytes, as BitSet.toByteArray"
    );
    assert!(convert(&Kind::Bits { length: 3 }, &MODES, "1x1").is_err());
    assert_eq!(convert(&Kind::Bit, &MODES, "1").unwrap(), json!(true));
    let hstore = |text: &str| convert(&Kind::Hstore, &MODES, text).unwrap();
    assert_eq!(
        hstore(r#""b"=>"4", "mid"=>"3", "zeta"=>"1", "alpha"=>"2", "key with space"=>"v""#),
        json!(r#"{"zeta":"1","b":"4","key with space":"v","alpha":"2","mid":"3"}"#)
    );
    assert_eq!(hstore(r#""k"=>NULL"#), json!(r#"{"k":null}"#));
    assert_eq!(
        hstore(r#""a\"b"=>"c\\d""#),
        json!(r#"{"a\"b":"c\\d"}"#),
        "escaped quotes and backslashes"
    );
    assert_eq!(hstore(""), json!("{}"));
    assert_eq!(
        convert(&Kind::Point, &MODES, "(1.5,2.25)").unwrap(),
        json!({"x": 1.5, "y": 2.25, "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAAJA", "srid": null})
    );
}

#[test]
fn unknown_geometric_values_are_the_bytes_of_their_java_text() {
    // Debezium reads them through the JDBC driver's objects: numbers as Java writes doubles
    // (host/testdata/cdc/shapes-unknown.jsonl).
    let unknown = |text: &str| convert(&Kind::Unknown, &MODES, text).unwrap();
    let text_of = |value: Value| {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(text_of(unknown("(2,3),(0,0)")), "(2.0,3.0),(0.0,0.0)");
    assert_eq!(text_of(unknown("<(1,1),2.5>")), "<(1.0,1.0),2.5>");
    assert_eq!(text_of(unknown("{1,-1,0}")), "{1.0,-1.0,0.0}");
    assert_eq!(
        text_of(unknown("[(1e+20,0.0001),(12345678.9,-2e-05)]")),
        "[(1.0E20,1.0E-4),(1.23456789E7,-2.0E-5)]"
    );
}
