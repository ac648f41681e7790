//! Start-up failures as Lambda sees them: the real `predict` binary, started the way Lambda
//! starts a bootstrap, against a fake Runtime API that records what it is told.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

use serde_json::{Value, json};

/// One request as the fake Runtime API received it.
struct Received {
    request_line: String,
    error_type_header: Option<String>,
    body: Value,
}

/// Starts `predict` with `env` and a fake Runtime API; returns the one request it made and
/// whether the process exited successfully.
fn start_predict(env: &[(&str, &str)]) -> (Received, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let api = listener.local_addr().expect("an address").to_string();
    let fake = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the function calls the API");
        let mut reader = BufReader::new(stream.try_clone().expect("clonable"));
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("a request line");
        let (mut length, mut error_type_header) = (0, None);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header");
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().expect("a length"),
                "lambda-runtime-function-error-type" => {
                    error_type_header = Some(value.trim().to_owned());
                }
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        (&stream)
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .expect("answered");
        Received {
            request_line: request_line.trim_end().to_owned(),
            error_type_header,
            body: serde_json::from_slice(&body).expect("a JSON body"),
        }
    });
    let status = Command::new(env!("CARGO_BIN_EXE_predict"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "predict")
        .envs(env.iter().copied())
        .status()
        .expect("predict runs");
    (fake.join().expect("the fake API"), status.success())
}

#[test]
fn a_missing_model_is_reported_as_model_load_failed_and_the_process_exits() {
    let (received, succeeded) = start_predict(&[("MODEL_DIR", "/nonexistent/model")]);
    assert!(!succeeded, "a function without its model must not serve");
    assert_eq!(
        received.request_line,
        "POST /2018-06-01/runtime/init/error HTTP/1.1"
    );
    assert_eq!(
        received.error_type_header.as_deref(),
        Some("Model.LoadFailed")
    );
    assert_eq!(received.body["errorType"], json!("Model.LoadFailed"));
    let message = received.body["errorMessage"].as_str().expect("a message");
    assert!(message.contains("/nonexistent/model"), "{message}");
}

#[test]
fn an_invalid_setting_is_reported_as_config_invalid_setting_naming_it() {
    let (received, succeeded) = start_predict(&[("PREDICT_MAX_TEXTS", "many")]);
    assert!(!succeeded);
    assert_eq!(received.body["errorType"], json!("Config.InvalidSetting"));
    let message = received.body["errorMessage"].as_str().expect("a message");
    assert!(
        message.contains("PREDICT_MAX_TEXTS") && message.contains("many"),
        "{message}"
    );
}
