use super::*;

/// Writes `files` (name, contents) under a fresh directory and returns it.
fn tree(files: &[(&str, &str)]) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trellis-codegen-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

fn generate(files: &[(&str, &str)]) -> Result<Vec<GeneratedFile>, CodegenError> {
    let dir = tree(files);
    let mut cg = Codegen::new().include(&dir);
    for (name, _) in files {
        cg = cg.file(dir.join(name));
    }
    cg.generate()
}

const WEATHER: &str = r#"
syntax = "proto3";
package acme.weather.v1;

import "google/protobuf/empty.proto";

// A city to forecast.
message City {
  // Its name, e.g. "Lisbon".
  string name = 1;
  optional string country = 2;
}

message Forecast {
  string city = 1;
  int32 celsius = 2;
  Sky sky = 3;
  repeated Hour hours = 4;
  map<string, double> extra = 5;
  City where = 6;
  bytes raw = 7;
  uint64 type = 8;
  string camelName = 9;
  string wind_speed_kmh = 10;

  message Hour {
    int32 hour = 1;
    Sky sky = 2;
    Forecast parent = 3;
  }
}

enum Sky {
  SKY_UNSPECIFIED = 0;
  SKY_CLEAR = 1;
  // Clouds.
  SKY_CLOUDY = 2;
}

// Weather, served by acme.
service WeatherService {
  // Today's forecast.
  rpc get_weather(City) returns (Forecast);
  rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty);
}
"#;

#[test]
fn weather_contract_generates_types_service_and_operations() {
    let files = generate(&[("acme/weather/v1/weather.proto", WEATHER)]).unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.package, "acme.weather.v1");
    assert_eq!(f.file_name, "acme.weather.v1.rs");
    let c = &f.contents;
    for expected in [
        "/// A city to forecast.\n#[derive(Clone, Debug, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]\n#[serde(crate = \"::serde\", default)]\npub struct City {",
        "    /// Its name, e.g. \"Lisbon\".\n    pub name: ::std::string::String,",
        "    pub country: ::std::option::Option<::std::string::String>,",
        "    pub sky: Sky,",
        "    pub hours: ::std::vec::Vec<forecast::Hour>,",
        "    pub extra: ::std::collections::BTreeMap<::std::string::String, f64>,",
        "    pub r#where: ::std::option::Option<City>,",
        "    pub raw: ::std::vec::Vec<u8>,",
        "    pub r#type: u64,",
        "    #[serde(rename = \"camelName\")]\n    pub camel_name: ::std::string::String,",
        // proto3 JSON's lowerCamelCase name is read too.
        "    #[serde(alias = \"windSpeedKmh\")]\n    pub wind_speed_kmh: ::std::string::String,",
        "pub mod forecast {",
        "        pub sky: super::Sky,",
        "        pub parent: ::std::option::Option<super::Forecast>,",
        "    #[default]\n    #[serde(rename = \"SKY_UNSPECIFIED\")]\n    Unspecified,",
        "    /// Clouds.\n    #[serde(rename = \"SKY_CLOUDY\")]\n    Cloudy,",
        "/// Weather, served by acme.\n#[derive(Clone, Copy, Debug, Default)]\npub struct WeatherService;",
        "impl ::trellis_worker::nexus::Service for WeatherService {\n    const NAME: &'static str = \"WeatherService\";",
        "    /// Today's forecast.\n    pub const GET_WEATHER: ::trellis_worker::nexus::Operation<City, Forecast> =\n        ::trellis_worker::nexus::Operation::new(\"get_weather\");",
        "    pub const PING: ::trellis_worker::nexus::Operation<(), ()> =\n        ::trellis_worker::nexus::Operation::new(\"Ping\");",
    ] {
        assert!(c.contains(expected), "missing\n{expected}\nin\n{c}");
    }
    // Map entries are not types of their own; no item is left without a doc comment.
    assert!(!c.contains("ExtraEntry"), "{c}");
    let lines: Vec<&str> = c.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("pub ") && !t.starts_with("pub const") || t.starts_with("pub const") {
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim_start().starts_with("#["))
                .unwrap();
            assert!(
                above.trim_start().starts_with("///"),
                "undocumented: {line}\n{c}"
            );
        }
    }
}

#[test]
fn a_message_that_contains_itself_is_boxed() {
    let files = generate(&[(
        "tree.proto",
        "syntax = \"proto3\";\npackage t;\nmessage Node { Node next = 1; repeated Node kids = 2; }\n",
    )])
    .unwrap();
    let c = &files[0].contents;
    assert!(
        c.contains("pub next: ::std::option::Option<::std::boxed::Box<Node>>,"),
        "{c}"
    );
}

#[test]
fn refused_constructs_name_the_file_and_item() {
    let cases = [
        (
            "syntax = \"proto3\";\npackage p;\nmessage M { oneof o { string a = 1; int32 b = 2; } }\n",
            "p.M.a",
            "oneof",
        ),
        (
            "syntax = \"proto3\";\npackage p;\nmessage M {}\nservice S { rpc Watch(M) returns (stream M); }\n",
            "p.S.Watch",
            "streaming",
        ),
        (
            "syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/timestamp.proto\";\nmessage M { google.protobuf.Timestamp at = 1; }\n",
            "p.M.at",
            "another package",
        ),
        (
            "syntax = \"proto2\";\npackage p;\nmessage M { optional string a = 1; }\n",
            "syntax",
            "only proto3",
        ),
    ];
    for (source, item, reason) in cases {
        match generate(&[("p.proto", source)]) {
            Err(CodegenError::Unsupported {
                file,
                item: got,
                reason: why,
            }) => {
                assert_eq!(file, "p.proto");
                assert_eq!(got, item);
                assert!(why.contains(reason), "{why}");
            }
            other => panic!("{source}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors_are_parse_errors_with_the_location() {
    let err = generate(&[(
        "bad.proto",
        "syntax = \"proto3\";\nmessage M { strin a = 1; }\n",
    )])
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CodegenError::Parse(_)), "{err:?}");
    assert!(text.contains("strin"), "{text}");
}

#[test]
fn check_reports_stale_and_missing_files_and_write_to_fixes_them() {
    let dir = tree(&[("acme/weather/v1/weather.proto", WEATHER)]);
    let out = dir.join("gen");
    let cg = Codegen::new()
        .include(&dir)
        .file(dir.join("acme/weather/v1/weather.proto"));
    assert_eq!(
        cg.check(&out).unwrap(),
        vec![out.join("acme.weather.v1.rs")]
    );
    let written = cg.write_to(&out).unwrap();
    assert_eq!(written, vec![out.join("acme.weather.v1.rs")]);
    assert!(cg.check(&out).unwrap().is_empty());
    std::fs::write(out.join("acme.weather.v1.rs"), "// edited by hand\n").unwrap();
    assert_eq!(
        cg.check(&out).unwrap(),
        vec![out.join("acme.weather.v1.rs")]
    );
}

#[test]
fn generation_is_deterministic() {
    let a = generate(&[("acme/weather/v1/weather.proto", WEATHER)]).unwrap();
    let b = generate(&[("acme/weather/v1/weather.proto", WEATHER)]).unwrap();
    assert_eq!(a, b);
}
