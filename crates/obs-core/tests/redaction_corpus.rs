//! Redaction on a corpus of real-looking secrets (each must disappear) and of
//! harmless look-alikes (each must survive untouched).
//!
//! The secrets below are fabricated: they have the shape of real credentials
//! and no value anywhere.

use obs_core::redact;

/// (input, the secret part that must not survive)
const SECRETS: &[(&str, &str)] = &[
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456ghi789",
        "eyJhbGciOiJIUzI1NiJ9",
    ),
    (
        "authorization=Basic dXNlcjpwYXNzd29yZA==",
        "dXNlcjpwYXNzd29yZA",
    ),
    ("calling with Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
    (
        "token eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
    ),
    (
        "aws key AKIAIOSFODNN7EXAMPLE in config",
        "AKIAIOSFODNN7EXAMPLE",
    ),
    ("temp creds ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI",
    ),
    (
        "gh token ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    (
        "GITLAB glpat-xJ4mZ9qR2sT7vW1yB3nC",
        "glpat-xJ4mZ9qR2sT7vW1yB3nC",
    ),
    (
        "slack xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-1234567890",
    ),
    (
        "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ),
    (
        "openai sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zB9",
        "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zB9",
    ),
    (
        "maps AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    ),
    (
        "connecting to postgres://app:s3cr3t-P4ss@db.internal:5432/orders",
        "s3cr3t-P4ss",
    ),
    ("redis://:hunter2hunter2@cache:6379", "hunter2hunter2"),
    ("login failed password=hunter2 for bob", "hunter2"),
    (
        r#"{"user":"bob","password":"correct horse battery staple"}"#,
        "correct horse",
    ),
    (
        "GET /cb?code=abc&access_token=ya29.a0AfH6SMBx3&state=1",
        "ya29.a0AfH6SMBx3",
    ),
    (
        "Cookie: session=38afes7a8; theme=dark; csrftoken=9a8b7c",
        "38afes7a8",
    ),
    ("Cookie: theme=dark; sid=38afes7a8", "sid=38afes7a8"),
    ("api_key: 'x9Y8z7W6v5'", "x9Y8z7W6v5"),
    (
        "client_secret = k4T9pLm2Qr8sVx3Zw7Ny",
        "k4T9pLm2Qr8sVx3Zw7Ny",
    ),
    (
        "random blob Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdI end",
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdI",
    ),
    (
        "hex secret 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "9f86d081884c7d659a2feaa0c55ad015",
    ),
    (
        "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY----- done",
        "MIIEowIBAAKCAQEA7bq",
    ),
    (
        "X-Api-Key: 0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef",
    ),
];

/// Harmless values that look a bit like secrets and must be left alone.
const LOOK_ALIKES: &[&str] = &[
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "request 550e8400-e29b-41d4-a716-446655440000 done",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b deployed",
    "image sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "GET /api/v1/orders/12345?page=2&sort=desc",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "com.example.payments.CheckoutServiceImplementation2Factory",
    "the author wrote 3 tokens_used=1200 prompt_tokens=800",
    "user bob logged in from 10.0.0.1",
    "basic arithmetic is fun",
    "Bearer",
    "https://example.com/path?query=1",
    "module::path::to::function",
    "ThisIsAVeryLongJavaClassNameWithoutDigitsAtAll",
    "duration_ms=1234 status=200 method=GET route=/items/{id}",
    "",
];

#[test]
fn secrets_are_redacted() {
    for (input, secret) in SECRETS {
        let out = redact(input);
        assert!(
            !out.contains(secret),
            "secret {secret:?} survived in {out:?} (input {input:?})"
        );
        assert!(out.contains("[REDACTED]"), "no marker in {out:?}");
    }
}

#[test]
fn look_alikes_survive() {
    for input in LOOK_ALIKES {
        let out = redact(input);
        assert_eq!(&out, input, "harmless {input:?} was changed");
        assert!(
            matches!(out, std::borrow::Cow::Borrowed(_)),
            "no allocation for {input:?}"
        );
    }
}

#[test]
fn context_around_secrets_is_kept() {
    assert_eq!(
        redact("login failed password=hunter2 for bob"),
        "login failed password=[REDACTED] for bob"
    );
    assert_eq!(
        redact("postgres://app:s3cr3t@db:5432/x"),
        "postgres://app:[REDACTED]@db:5432/x"
    );
    assert_eq!(
        redact("Authorization: Bearer abc.def.ghi"),
        "Authorization: Bearer [REDACTED]"
    );
    assert_eq!(redact("x AKIAIOSFODNN7EXAMPLE y"), "x [REDACTED] y");
}
