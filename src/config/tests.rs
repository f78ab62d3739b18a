//! The loader's rules, checked on figments built in memory (no file, no environment).

use super::*;

#[test]
fn defaults_are_the_contract_ones() {
    let s = from_figment(Figment::from(Serialized::defaults(Settings::default()))).unwrap().settings;
    assert_eq!(s.port, 5000);
    assert_eq!(s.address.to_string(), "0.0.0.0");
    assert_eq!(s.bcrypt_cost, 12);
    assert_eq!(s.password_min_length, 12);
    assert_eq!(s.database_url, "sqlite://userauth.db?mode=rwc");
    assert!(s.classic_routes && !s.cookie_secure);
}

#[test]
fn weak_cost_is_refused_unless_allowed() {
    let weak = Figment::from(Serialized::defaults(Settings::default())).merge(("bcrypt_cost", 4));
    let err = from_figment(weak.clone()).unwrap_err().to_string();
    assert!(err.contains("below the minimum of 10"), "{err}");
    assert!(from_figment(weak.merge(("allow_weak_bcrypt_cost", true))).is_ok());
}

fn with(key: &str, value: serde_json::Value) -> Result<Loaded, ConfigError> {
    from_figment(Figment::from(Serialized::defaults(Settings::default())).merge((key, value)))
}

#[test]
fn every_numeric_key_is_bounded_and_named() {
    for &(key, min, max) in NUMERIC_RANGES {
        let weak = ("allow_weak_bcrypt_cost", true);
        let base = || Figment::from(Serialized::defaults(Settings::default())).merge(weak);
        assert!(from_figment(base().merge((key, min))).is_ok(), "{key} = {min}");
        assert!(from_figment(base().merge((key, max))).is_ok(), "{key} = {max}");
        let err = from_figment(base().merge((key, max + 1))).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
        if min > 0 {
            let err = from_figment(base().merge((key, min - 1))).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
    let err = with("session_idle_timeout_secs", serde_json::json!(u64::MAX)).unwrap_err().to_string();
    assert!(err.contains("session_idle_timeout_secs"), "{err}");
}

#[test]
fn secrets_are_not_printed_and_an_empty_token_is_refused() {
    let f = Figment::from(Serialized::defaults(Settings::default()))
        .merge(("metrics_token", "s3cret-scrape-token"))
        .merge(("smtp_url", "smtp://mailer:hunter2@mail.example.com:587"))
        .merge(("mail_from", "Accounts <no-reply@example.com>"));
    let loaded = from_figment(f).unwrap();
    for shown in [format!("{:?}", loaded.settings), format!("{loaded:?}"), format!("{:#?}", loaded.settings)] {
        assert!(!shown.contains("s3cret-scrape-token") && !shown.contains("hunter2"), "{shown}");
    }
    let json = serde_json::to_string(&loaded.settings).unwrap();
    assert!(!json.contains("s3cret") && !json.contains("hunter2"), "{json}");
    assert!(loaded.settings.mail_settings().unwrap().is_some(), "the secret is still usable");
    for empty in ["", "   "] {
        let err = with("metrics_token", serde_json::json!(empty)).unwrap_err().to_string();
        assert!(err.contains("metrics_token"), "{err}");
    }
}

#[test]
fn rocket_keys_are_bounded_and_named() {
    let base = || Figment::from(rocket::Config::default()).merge(Serialized::defaults(Settings::default()));
    for &(key, min, max) in ROCKET_RANGES {
        let key = key.replace('*', "json");
        let nested = |v: u64| match key.split_once('.') {
            Some((table, inner)) => (table.to_owned(), serde_json::json!({ inner: v })),
            None => (key.clone(), serde_json::json!(v)),
        };
        let (k, v) = nested(max);
        assert!(from_figment(base().merge((k.as_str(), v))).is_ok(), "{key} = {max}");
        let (k, v) = nested(max + 1);
        let err = from_figment(base().merge((k.as_str(), v))).unwrap_err().to_string();
        assert!(err.contains(&key), "{key}: {err}");
        if min > 0 {
            let (k, v) = nested(min - 1);
            let err = from_figment(base().merge((k.as_str(), v))).unwrap_err().to_string();
            assert!(err.contains(&key), "{key}: {err}");
        }
    }
    for (key, bad) in [
        ("keep_alive", serde_json::json!("soon")),
        ("log_level", serde_json::json!("loud")),
        ("limits", serde_json::json!({"json": "lots"})),
        ("shutdown", serde_json::json!({"grace": "x"})),
        ("workers", serde_json::json!(-1)),
        ("ident", serde_json::json!(7)),
        ("cli_colors", serde_json::json!("sometimes")),
        ("ip_header", serde_json::json!("X Real IP")),
        ("temp_dir", serde_json::json!("/nonexistent/userauth-tmp")),
    ] {
        let err = from_figment(base().merge((key, bad.clone()))).unwrap_err().to_string();
        assert!(err.contains(key), "{key} = {bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn postgres_needs_two_connections() {
    let pg = |n: u32| {
        from_figment(
            Figment::from(Serialized::defaults(Settings::default()))
                .merge(("database_url", "postgres://u@localhost/db"))
                .merge(("database_max_connections", n)),
        )
    };
    let err = pg(1).unwrap_err().to_string();
    assert!(err.contains("database_max_connections") && err.contains("at least 2"), "{err}");
    assert!(pg(2).is_ok());
    assert!(with("database_max_connections", serde_json::json!(1)).is_ok(), "SQLite works with one");
}

#[test]
fn origins_are_parsed() {
    let l = with("public_url", serde_json::json!("https://Auth.Example.com:443/base/")).unwrap();
    assert_eq!(l.settings.origins().unwrap().0.as_deref(), Some("https://auth.example.com"));
    assert!(with("public_url", serde_json::json!("auth.example.com")).unwrap_err().to_string().contains("public_url"));
    let err = with("allowed_origins", serde_json::json!(["ftp://x"])).unwrap_err().to_string();
    assert!(err.contains("allowed_origins"), "{err}");
    let err = with("allowed_redirect_origins", serde_json::json!(["app.example.com"])).unwrap_err().to_string();
    assert!(err.contains("allowed_redirect_origins"), "{err}");
    for bad in ["https://example.com", "example.com:443", "", "10.0.0.1", "a..b", "exa mple.com", "-x.com"] {
        let err = with("cookie_domain", serde_json::json!(bad)).unwrap_err().to_string();
        assert!(err.contains("cookie_domain"), "{bad:?}: {err}");
    }
    let l = with("cookie_domain", serde_json::json!(".Example.COM")).unwrap();
    assert_eq!(l.settings.forward_auth().unwrap().0.as_deref(), Some("example.com"));
    let err = with("trusted_proxies", serde_json::json!(["10.0.0.0/33"])).unwrap_err().to_string();
    assert!(err.contains("trusted_proxies"), "{err}");
}

#[test]
fn messages_are_worded_as_before_they_were_typed() {
    let msg = |key: &str, value: serde_json::Value| with(key, value).unwrap_err().to_string();
    assert_eq!(
        msg("bcrypt_cost", serde_json::json!(4)),
        "configuration: bcrypt_cost 4 is below the minimum of 10; weak costs are for tests only \
         (set allow_weak_bcrypt_cost = true to allow them)"
    );
    assert_eq!(
        msg("login_max_failures", serde_json::json!(0)),
        "configuration: login_max_failures must be between 1 and 10000, not 0"
    );
    assert_eq!(
        msg("allowed_origins", serde_json::json!(["ftp://x"])),
        "configuration: allowed_origins: \"ftp://x\" is not an origin like https://app.example.com"
    );
    assert_eq!(
        msg("cookie_domain", serde_json::json!("10.0.0.1")),
        "configuration: cookie_domain must be a host name like example.com, not \"10.0.0.1\""
    );
    assert_eq!(
        msg("reset_delivery", serde_json::json!("email")),
        "configuration: reset_delivery = \"email\" needs smtp_url"
    );
    assert_eq!(
        msg("metrics_token", serde_json::json!(" ")),
        "configuration: metrics_token is empty: set a long random token, or leave it unset"
    );
    assert!(msg("port", serde_json::json!("high")).starts_with("configuration: port: invalid type"));
    let pg = Figment::from(Serialized::defaults(Settings::default()))
        .merge(("database_url", "postgres://u@localhost/db"))
        .merge(("database_max_connections", 1));
    assert_eq!(
        from_figment(pg).unwrap_err().to_string(),
        "configuration: database_max_connections must be at least 2 on PostgreSQL, not 1 \
         (migrations hold an advisory lock on one connection while applying them on another)"
    );
}
