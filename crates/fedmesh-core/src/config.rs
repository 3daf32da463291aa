//! Layered configuration: defaults → TOML file → environment → command line.
//!
//! Defaults live in the configuration types (`#[serde(default)]`); this module merges the other
//! layers into one TOML table and deserializes it once. Unknown keys are errors in every layer
//! (the types use `deny_unknown_fields`), and every error says where the bad value came from:
//! the file and line, the environment variable, or the `--set` argument.
//!
//! Environment variables: `<PREFIX><KEY>`, with `__` between nested keys, e.g. with prefix
//! `FEDMESH_NODE_`, `FEDMESH_NODE_TLS__CERT=/etc/fedmesh/node.pem` sets `tls.cert`. Values are
//! read as TOML scalars when they parse as one (`true`, `42`, `1.5`), as strings otherwise.

use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or does not fit the configuration's shape.
    #[error("config file {file}: {message}")]
    File {
        /// The file's path as given.
        file: String,
        /// The TOML error, with line, column and key.
        message: String,
    },
    /// An environment variable or `--set` argument does not fit.
    #[error("{origin}: {message}")]
    Override {
        /// `environment variable FEDMESH_...` or `--set key=value`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// The values parse but break a rule checked by `validate()`.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The dotted key path.
        key: String,
        /// The rule broken.
        message: String,
    },
}

/// One value set from outside the file: where it came from, its key path and raw value.
#[derive(Debug, Clone)]
struct Override {
    origin: String,
    path: Vec<String>,
    raw: String,
}

/// The layers of one configuration, gathered before deserializing.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    file: Option<(String, String)>,
    overrides: Vec<Override>,
}

impl Layers {
    /// Starts with defaults only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TOML file's text; `name` is how errors refer to the file (its path).
    pub fn file(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.file = Some((name.into(), text.into()));
        self
    }

    /// Adds every variable of `env` that starts with `prefix` (e.g. `FEDMESH_NODE_`).
    /// The environment is passed in, never read here, so that tests can substitute it.
    pub fn env<I, K, V>(mut self, prefix: &str, env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.as_ref();
                let rest = key.strip_prefix(prefix)?;
                Some((key.to_owned(), rest.to_owned() + "\0" + v.as_ref()))
            })
            .collect();
        // Stable order, so that errors are reproducible.
        vars.sort();
        for (name, joined) in vars {
            let (rest, raw) = joined.split_once('\0').unwrap_or((&joined, ""));
            let path = rest
                .split("__")
                .map(|segment| segment.to_ascii_lowercase())
                .collect();
            self.overrides.push(Override {
                origin: format!("environment variable {name}"),
                path,
                raw: raw.to_owned(),
            });
        }
        self
    }

    /// Adds `key.path=value` assignments from the command line (`--set`).
    pub fn set_args<I, S>(mut self, args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for arg in args {
            let arg = arg.as_ref();
            let (key, raw) = arg.split_once('=').ok_or_else(|| ConfigError::Override {
                origin: format!("--set {arg}"),
                message: "expected key=value".to_owned(),
            })?;
            self.overrides.push(Override {
                origin: format!("--set {arg}"),
                path: key.split('.').map(str::to_owned).collect(),
                raw: raw.to_owned(),
            });
        }
        Ok(self)
    }

    /// Merges the layers and deserializes them into `T`.
    ///
    /// Each layer is checked on its own as it is added, so that an unknown key or a bad value
    /// is reported against the file line or the variable that brought it; a required key may
    /// come from any layer, so "missing field" is only an error once all are merged.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let mut table = toml::Table::new();
        if let Some((name, text)) = &self.file {
            let file_error = |e: toml::de::Error| ConfigError::File {
                file: name.clone(),
                message: e.to_string().trim_end().to_owned(),
            };
            // Deserialize the file alone first: its errors then point at its own lines.
            if let Err(e) = toml::from_str::<T>(text)
                && !is_missing_field(&e.to_string())
            {
                return Err(file_error(e));
            }
            table = toml::from_str(text).map_err(file_error)?;
        }
        for item in &self.overrides {
            if item.path.iter().any(String::is_empty) {
                return Err(ConfigError::Override {
                    origin: item.origin.clone(),
                    message: "empty key segment".to_owned(),
                });
            }
            insert(&mut table, &item.path, scalar(&item.raw)).map_err(|message| {
                ConfigError::Override {
                    origin: item.origin.clone(),
                    message,
                }
            })?;
            if let Err(e) = T::deserialize(toml::Value::Table(table.clone()))
                && !is_missing_field(&e.to_string())
            {
                return Err(ConfigError::Override {
                    origin: item.origin.clone(),
                    message: format!(
                        "key `{}`: {}",
                        item.path.join("."),
                        e.to_string().trim_end()
                    ),
                });
            }
        }
        T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Override {
            origin: match &self.file {
                Some((name, _)) => format!("config file {name} and its overrides"),
                None => "configuration".to_owned(),
            },
            message: e.to_string().trim_end().to_owned(),
        })
    }
}

/// Whether a deserialization error is only a required key still absent (another layer may
/// bring it).
fn is_missing_field(message: &str) -> bool {
    message.contains("missing field")
}

/// Every leaf key of a table, dotted (`limits.request_timeout_ms`), in table order. Used to
/// check that documentation lists every key a configuration has.
pub fn dotted_keys(table: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

/// Reads a raw value as a TOML scalar when it is one, as a string otherwise.
fn scalar(raw: &str) -> toml::Value {
    let parsed: Result<toml::Table, _> = toml::from_str(&format!("v = {raw}"));
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(
            value @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
        ) => value,
        Some(value @ toml::Value::Array(_)) => value,
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".to_owned());
    };
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => {
                return Err(format!(
                    "key `{}` is a value, not a table",
                    path[..=depth].join(".")
                ));
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        name: String,
        port: u16,
        verbose: bool,
        tls: Tls,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Tls {
        cert: String,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                name: "default".into(),
                port: 7443,
                verbose: false,
                tls: Tls::default(),
            }
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let sample: Sample = Layers::new()
            .file("node.toml", "name = \"file\"\nport = 1\n")
            .env(
                "FEDMESH_X_",
                [
                    ("FEDMESH_X_PORT", "2"),
                    ("FEDMESH_X_TLS__CERT", "/c.pem"),
                    ("OTHER", "x"),
                ],
            )
            .set_args(["verbose=true"])
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(
            sample,
            Sample {
                name: "file".into(),
                port: 2,
                verbose: true,
                tls: Tls {
                    cert: "/c.pem".into()
                },
            }
        );
    }

    #[test]
    fn defaults_fill_what_no_layer_sets() {
        let sample: Sample = Layers::new().load().unwrap();
        assert_eq!(sample, Sample::default());
    }

    #[test]
    fn unknown_key_in_file_names_file_line_and_key() {
        let err = Layers::new()
            .file("/etc/fedmesh/node.toml", "name = \"a\"\nprot = 3\n")
            .load::<Sample>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/fedmesh/node.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn bad_environment_variable_is_named() {
        let err = Layers::new()
            .env("FEDMESH_X_", [("FEDMESH_X_TLS__CRET", "x")])
            .load::<Sample>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("FEDMESH_X_TLS__CRET"), "{err}");
        assert!(err.contains("cret"), "{err}");

        let err = Layers::new()
            .env("FEDMESH_X_", [("FEDMESH_X_PORT", "many")])
            .load::<Sample>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("FEDMESH_X_PORT"), "{err}");
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Required {
        member_id: String,
        tls: Tls,
    }

    #[test]
    fn required_keys_may_come_from_any_layer() {
        let loaded: Required = Layers::new()
            .file("node.toml", "[tls]\n")
            .env(
                "FEDMESH_X_",
                [
                    ("FEDMESH_X_TLS__CERT", "/c.pem"),
                    ("FEDMESH_X_MEMBER_ID", "unistra"),
                ],
            )
            .load()
            .unwrap();
        assert_eq!(loaded.member_id, "unistra");
        assert_eq!(loaded.tls.cert, "/c.pem");

        let err = Layers::new()
            .file("node.toml", "[tls]\n")
            .load::<Required>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `member_id`"), "{err}");
        assert!(err.contains("node.toml"), "{err}");
    }

    #[test]
    fn malformed_set_argument_is_rejected() {
        let err = Layers::new().set_args(["port"]).unwrap_err().to_string();
        assert!(err.contains("--set port"), "{err}");
    }
}

/// How logs are written. Section `[log]` of the node and coordinator configuration files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` (readable lines) or `json` (one object per line, for log shippers).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,fedmesh_node=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Span export. Section `[telemetry]` of the node and coordinator configuration files.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector endpoint (e.g. `http://127.0.0.1:4317`); spans are exported only
    /// when set.
    pub otlp_endpoint: Option<String>,
}
