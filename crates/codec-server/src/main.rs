//! `trellis-codec-server`: a codec server for the Temporal Web UI and CLI, decrypting (and
//! optionally decompressing) payloads written by a Trellis client or worker configured with
//! `ZstdCodec` (when `--zstd`) then `AesGcmCodec`.
//!
//! ```text
//! trellis-codec-server --listen 127.0.0.1:8081 --encryption-key-id ID --encryption-key-file PATH
//!                      [--decryption-key ID=PATH ...] [--zstd] [--cors-origin URL ...]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use trellis_codec_server::{CodecServerOptions, router};
use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};

const USAGE: &str = "\
trellis-codec-server: a Temporal codec server (POST .../encode, POST .../decode) for the Web UI
and the CLI, over Trellis's AES-256-GCM (and optionally zstd) codecs.

USAGE:
    trellis-codec-server --encryption-key-id ID --encryption-key-file PATH [OPTIONS]

OPTIONS:
    --listen ADDR               Address to listen on [default: 127.0.0.1:8081]; port 0 picks a
                                free port. The address is printed once listening.
    --encryption-key-id ID      Key id of the current key (the payloads' encryption-key-id).
    --encryption-key-file PATH  File holding the current key: exactly 32 raw bytes
                                (e.g. `head -c 32 /dev/urandom > key.bin`).
    --decryption-key ID=PATH    An older key that still decrypts (key rotation); repeatable.
    --zstd                      Payloads are zstd-compressed before encryption (a client with
                                ZstdCodec then AesGcmCodec).
    --cors-origin URL           Browser origin allowed to call the server, e.g.
                                https://temporal.example.com; repeatable; `*` allows any origin
                                (without credentials). [default: http://localhost:8233 and
                                http://127.0.0.1:8233, the dev server's UI]
    -h, --help                  Print this help.

Log level: RUST_LOG (default info), on stderr.";

#[derive(Debug, Default)]
struct Args {
    listen: Option<String>,
    key_id: Option<String>,
    key_file: Option<PathBuf>,
    decryption_keys: Vec<(String, PathBuf)>,
    zstd: bool,
    cors_origins: Vec<String>,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--listen" => out.listen = Some(value("--listen")?),
            "--encryption-key-id" => out.key_id = Some(value("--encryption-key-id")?),
            "--encryption-key-file" => {
                out.key_file = Some(PathBuf::from(value("--encryption-key-file")?))
            }
            "--decryption-key" => {
                let v = value("--decryption-key")?;
                let (id, path) = v
                    .split_once('=')
                    .filter(|(id, path)| !id.is_empty() && !path.is_empty())
                    .ok_or_else(|| format!("--decryption-key takes ID=PATH, not {v:?}"))?;
                out.decryption_keys
                    .push((id.to_owned(), PathBuf::from(path)));
            }
            "--zstd" if inline.is_none() => out.zstd = true,
            "--cors-origin" => out.cors_origins.push(value("--cors-origin")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Parsed::Run(out))
}

fn read_key(path: &Path) -> Result<[u8; 32], String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read key file {path:?}: {e}"))?;
    bytes.as_slice().try_into().map_err(|_| {
        format!(
            "key file {path:?} holds {} bytes; it must hold exactly 32 raw bytes \
             (e.g. `head -c 32 /dev/urandom > key.bin`)",
            bytes.len()
        )
    })
}

fn build(args: &Args) -> Result<(DataConverter, CodecServerOptions), String> {
    let (Some(key_id), Some(key_file)) = (&args.key_id, &args.key_file) else {
        return Err("both --encryption-key-id and --encryption-key-file are required".into());
    };
    if key_id.is_empty() {
        return Err("--encryption-key-id must not be empty".into());
    }
    let mut aes = AesGcmCodec::new(key_id.clone(), read_key(key_file)?);
    for (id, path) in &args.decryption_keys {
        aes = aes.with_decryption_key(id.clone(), read_key(path)?);
    }
    let mut converter = DataConverter::default();
    if args.zstd {
        converter = converter.with_codec(ZstdCodec::new());
    }
    converter = converter.with_codec(aes);

    let mut options = CodecServerOptions::new();
    if args.cors_origins.iter().any(|o| o == "*") {
        options = options.any_cors_origin();
    } else if !args.cors_origins.is_empty() {
        options = options
            .cors_origins(&args.cors_origins)
            .map_err(|e| e.to_string())?;
    }
    Ok((converter, options))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

async fn run(args: Args) -> Result<(), String> {
    let (converter, options) = build(&args)?;
    let listen = args.listen.as_deref().unwrap_or("127.0.0.1:8081");
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let origins = match options.allowed_origins() {
        Some(list) => list.join(", "),
        None => "any".to_owned(),
    };
    // The first line on stdout is the address; scripts and tests read it.
    println!("trellis-codec-server listening on http://{addr}");
    tracing::info!(
        %addr,
        key_id = args.key_id.as_deref().unwrap_or_default(),
        zstd = args.zstd,
        cors_origins = %origins,
        "codec server ready: POST http://{addr}/encode, POST http://{addr}/decode"
    );
    axum::serve(listener, router(converter, options))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("trellis-codec-server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis-codec-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        match parse_args(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(a) => Ok(a),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn parses_flags_in_both_spellings() {
        let a = parse(&[
            "--listen=0.0.0.0:9",
            "--encryption-key-id",
            "k1",
            "--encryption-key-file",
            "/k",
            "--decryption-key",
            "old=/o",
            "--zstd",
            "--cors-origin",
            "http://a",
            "--cors-origin=http://b",
        ])
        .unwrap();
        assert_eq!(a.listen.as_deref(), Some("0.0.0.0:9"));
        assert_eq!(a.key_id.as_deref(), Some("k1"));
        assert_eq!(a.key_file, Some(PathBuf::from("/k")));
        assert_eq!(a.decryption_keys, [("old".into(), PathBuf::from("/o"))]);
        assert!(a.zstd);
        assert_eq!(a.cors_origins, ["http://a", "http://b"]);
        assert!(matches!(parse(&["--help"]), Err(e) if e == "help"));
        assert!(
            parse(&["--bogus"])
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(parse(&["--listen"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--decryption-key", "nopath"])
                .unwrap_err()
                .contains("ID=PATH")
        );
    }

    #[test]
    fn requires_a_key_of_32_bytes() {
        let e = build(&parse(&["--encryption-key-id", "k"]).unwrap()).unwrap_err();
        assert!(e.contains("required"), "{e}");
        let dir = std::env::temp_dir().join(format!("trellis-codec-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short.bin");
        std::fs::write(&short, [0u8; 31]).unwrap();
        let args = parse(&[
            "--encryption-key-id",
            "k",
            "--encryption-key-file",
            short.to_str().unwrap(),
        ])
        .unwrap();
        let e = build(&args).unwrap_err();
        assert!(e.contains("holds 31 bytes"), "{e}");
        let good = dir.join("good.bin");
        std::fs::write(&good, [7u8; 32]).unwrap();
        let args = parse(&[
            "--encryption-key-id",
            "k",
            "--encryption-key-file",
            good.to_str().unwrap(),
            "--cors-origin",
            "not an origin",
        ])
        .unwrap();
        assert!(build(&args).unwrap_err().contains("invalid CORS origin"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
