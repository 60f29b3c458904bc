//! Storage: URI parsing, object stores from `storage_options`, a per-process store cache and
//! secret redaction.
//!
//! URIs: plain paths (relative or absolute), `file://`, `s3://`/`s3a://`, `gs://`,
//! `az://`/`azure://`/`abfs://`/`abfss://`, `memory://`. Option keys are those of
//! object_store (and so delta-rs): `aws_access_key_id`, `aws_secret_access_key`,
//! `aws_endpoint`, `aws_region`, `aws_allow_http`, `google_service_account`,
//! `azure_storage_account_name`, ...; keys are case-insensitive, and the standard environment
//! variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) are read as well.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore};
use url::Url;

use crate::error::{LakeError, Result};

/// User storage options. `Debug` and `Display` never show values.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// Build from key/value pairs; keys are lower-cased and secret values are registered for
    /// redaction.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let map: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        for (k, v) in &map {
            if is_secret_key(k) {
                register_secret(v);
            }
            if let Some(userinfo) = url_userinfo(v) {
                register_secret(userinfo);
                if let Some((_, password)) = userinfo.split_once(':') {
                    register_secret(password);
                }
            }
        }
        StorageOptions(map)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The options whose values are safe to show or pickle (no credentials: neither secret
    /// keys nor URLs carrying user info, such as `proxy_url=http://user:pass@host`).
    pub fn public(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, v)| !is_secret_key(k) && url_userinfo(v).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.0.keys().map(|k| k.as_str()).collect();
        write!(f, "StorageOptions(keys={keys:?})")
    }
}

/// Whether an option key names a credential (its value is never shown). Switches named after
/// signing (`aws_skip_signature`) are flags, not credentials.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "key", "token", "password", "sas", "credential", "signature", "service_account"]
        .iter()
        .any(|s| k.contains(s))
        && !k.ends_with("_path")
        && !k.ends_with("skip_signature")
        && k != "aws_sse_kms_key_id"
}

/// The user info (`user:password`) of a URL-valued option, if it has one.
fn url_userinfo(value: &str) -> Option<&str> {
    let rest = &value[value.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..at]).filter(|u| !u.is_empty())
}

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

const SECRET_ENV_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
];

/// Remember a secret so that [`redact`] removes it from any message, in every form a message
/// may carry it: as given, percent-decoded, percent-encoded (as in a URL), and, for a query
/// string such as an Azure SAS token, its `sig` value on its own.
pub fn register_secret(value: &str) {
    if value.is_empty() {
        return;
    }
    let mut forms = vec![value.to_string()];
    for pair in value.trim_start_matches('?').split('&') {
        if let Some(("sig", v)) = pair.split_once('=') {
            forms.push(v.to_string());
        }
    }
    for f in forms.clone() {
        forms.push(percent_decode(&f));
        forms.push(percent_encoding::utf8_percent_encode(&f, percent_encoding::NON_ALPHANUMERIC).to_string());
        forms.push(url::form_urlencoded::byte_serialize(f.as_bytes()).collect());
    }
    let mut s = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for f in forms {
        if !f.is_empty() && !s.contains(&f) {
            s.push(f);
        }
    }
    s.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

/// `msg` with each occurrence of `secret` replaced by `***`; a secret under 4 characters only
/// where it stands as a value: a whole word, a quoted string (`'x'`, `"x"`) or after `=` /
/// `:`, so that it cannot hide the text around it (`'s` in "index's", `k` in "k=None").
fn replace_secret(msg: &str, secret: &str) -> String {
    if secret.len() >= 4 {
        return msg.replace(secret, "***");
    }
    let quote = |c: char| c == '\'' || c == '"';
    let opens = |c: Option<char>| c.is_none_or(|c| c.is_whitespace() || quote(c) || "=:([".contains(c));
    let closes = |c: Option<char>| c.is_none_or(|c| c.is_whitespace() || quote(c) || ",.;)]&".contains(c));
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(secret) {
        let (before, after) = (rest[..i].chars().next_back(), rest[i + secret.len()..].chars().next());
        let quoted_alike = match (before.filter(|&c| quote(c)), after.filter(|&c| quote(c))) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true,
            _ => false,
        };
        let value = opens(before) && closes(after) && quoted_alike;
        out.push_str(&rest[..i]);
        out.push_str(if value { "***" } else { secret });
        rest = &rest[i + secret.len()..];
    }
    out.push_str(rest);
    out
}

fn register_env_secrets() {
    for name in SECRET_ENV_VARS {
        if let Ok(v) = std::env::var(name) {
            register_secret(&v);
        }
    }
}

/// Replace every registered secret (options and credential environment variables) in `msg`.
pub fn redact(msg: &str) -> String {
    register_env_secrets();
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = msg.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = replace_secret(&out, s);
        }
    }
    out
}

/// Whether metadata found in the store `home` (a Delta log, Iceberg metadata, an index
/// manifest: bytes anyone with write access there can change) may make lakevec open an
/// object in the store `other`: the same store (scheme and bucket/host), or one the caller
/// listed in the environment variable `LAKEVEC_ALLOWED_STORES` (comma-separated URLs, e.g.
/// `s3://other-bucket,gs://b`). So crafted metadata cannot send the caller's credentials
/// and requests to another bucket or host.
pub fn store_allowed(home: &Url, other: &Url) -> bool {
    if home == other {
        return true;
    }
    std::env::var("LAKEVEC_ALLOWED_STORES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| parse_uri(s).ok())
        .any(|a| &a.store_url == other)
}

/// A parsed table location: the store it lives in and the path inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Scheme and authority only, e.g. `s3://bucket/` or `file:///`.
    pub store_url: Url,
    /// Path inside the store (no leading slash), the part before any glob.
    pub path: Path,
    /// A glob pattern over full store paths, when the URI had one (`*`, `?`, `[`).
    pub glob: Option<String>,
    /// The URI as the user should see it (no credentials).
    pub display: String,
}

impl Location {
    pub fn scheme(&self) -> &str {
        self.store_url.scheme()
    }
    /// Full URL of an object inside this location's store.
    pub fn url_of(&self, path: &Path) -> String {
        format!("{}{}", self.store_url.as_str(), path.as_ref())
    }
    pub fn is_local(&self) -> bool {
        self.scheme() == "file"
    }
    /// The local file or folder of `object` in this location's store (`None` for remote
    /// stores). Object paths are percent-encoded (non-ASCII and `%#~|^{}<>"`); the file is not.
    pub fn local_path(&self, object: &Path) -> Option<std::path::PathBuf> {
        self.is_local().then(|| std::path::PathBuf::from(format!("/{}", percent_decode(object.as_ref()))))
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Split a store path at its first segment containing a glob character.
fn split_glob(path: &str, globs: bool) -> (String, Option<String>) {
    if !globs || !has_glob(path) {
        return (path.to_string(), None);
    }
    let segs: Vec<&str> = path.split('/').collect();
    let first = segs.iter().position(|s| has_glob(s)).unwrap_or(segs.len());
    (segs[..first].join("/"), Some(path.trim_start_matches('/').to_string()))
}

/// Parse a user URI or path into a [`Location`] (`*`, `?` and `[` start a glob).
pub fn parse_uri(uri: &str) -> Result<Location> {
    parse(uri, true)
}

/// Parse the URI of one object (a file named by table metadata): no glob characters.
pub fn parse_object_uri(uri: &str) -> Result<Location> {
    parse(uri, false)
}

/// `uri` as it may appear in a message: without user info (`scheme://KEY:SECRET@host`) and
/// without a query string (`?sig=...`). Textual, so it also holds for URIs that do not parse
/// (a secret may hold `/` or `@`: everything up to the last `@` before the query goes).
pub fn without_credentials(uri: &str) -> String {
    let (base, had_query) = match uri.find('?') {
        Some(i) => (&uri[..i], true),
        None => (uri, false),
    };
    let out = match base.find("://") {
        Some(s) => match base[s + 3..].rfind('@') {
            Some(at) => format!("{}***@{}", &base[..s + 3], &base[s + 3 + at + 1..]),
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if had_query {
        format!("{out}?***")
    } else {
        out
    }
}

fn parse(uri: &str, globs: bool) -> Result<Location> {
    let uri = uri.trim();
    if uri.is_empty() {
        return Err(LakeError::InvalidArgument("empty table URI".into()));
    }
    let has_scheme = uri.contains("://");
    if !has_scheme {
        let p = std::path::absolute(uri).map_err(|e| LakeError::InvalidArgument(format!("bad path '{uri}': {e}")))?;
        let s = p.to_string_lossy().replace('\\', "/");
        return local_location(s.trim_start_matches('/'), uri, globs);
    }
    let url = Url::parse(uri)
        .map_err(|e| LakeError::InvalidArgument(format!("cannot parse URI '{}': {e}", without_credentials(uri))))?;
    let display = {
        let mut u = url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.set_query(None);
        u.to_string()
    };
    match url.scheme() {
        "file" => {
            let decoded = percent_decode(url.path());
            local_location(decoded.trim_start_matches('/'), &display, globs)
        }
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "memory" => {
            let host = url.host_str().unwrap_or("");
            if host.is_empty() && url.scheme() != "memory" {
                return Err(LakeError::InvalidArgument(format!("URI '{display}' has no bucket or container")));
            }
            let scheme = if url.scheme() == "s3a" { "s3" } else { url.scheme() };
            let store_url = Url::parse(&format!("{scheme}://{host}/"))
                .map_err(|e| LakeError::InvalidArgument(format!("bad URI '{display}': {e}")))?;
            let raw_path = percent_decode(url.path().trim_start_matches('/'));
            let (prefix, glob) = split_glob(raw_path.trim_end_matches('/'), globs);
            Ok(Location { store_url, path: Path::from(prefix.as_str()), glob, display })
        }
        other => Err(LakeError::InvalidArgument(format!(
            "unsupported URI scheme '{other}' in '{display}' \
             (supported: file, s3, gs, az, abfss, memory, or a local path)"
        ))),
    }
}

/// `a/./b/../c` -> `a/c` (lexically, as `os.path.normpath`; object-store paths reject `.`
/// and `..` segments).
fn normalize_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn local_location(abs_no_leading_slash: &str, display: &str, globs: bool) -> Result<Location> {
    let normal = normalize_segments(abs_no_leading_slash);
    let (prefix, glob) = split_glob(&normal, globs);
    Ok(Location {
        store_url: Url::parse("file:///").expect("static URL"),
        path: Path::from(prefix.as_str()),
        glob,
        display: display.to_string(),
    })
}

/// The one form in which data file URLs (or paths) are compared: percent-decoded, and for
/// local files (`file:` URLs, absolute paths) the real path, with `.`/`..` segments and
/// symbolic links resolved. Table logs and delete files name the same file in several ways:
/// delta-rs reports deletion vectors against the table root with symlinks resolved, while
/// the log's relative paths join the root as the user gave it; Iceberg writers spell
/// `file:/x` or `file:///x`. Other schemes compare as decoded (`s3a://`, `s3n://` as `s3://`).
pub fn normal_file_url(url: &str) -> String {
    let decoded = percent_decode(url);
    let local = if let Some(rest) = decoded.strip_prefix("file://localhost/") {
        Some(rest.to_string())
    } else if let Some(rest) = decoded.strip_prefix("file:") {
        Some(rest.trim_start_matches('/').to_string())
    } else if decoded.starts_with('/') {
        Some(decoded.trim_start_matches('/').to_string())
    } else {
        None
    };
    match local {
        Some(p) => {
            let lexical = format!("/{}", normalize_segments(&p));
            let real =
                std::fs::canonicalize(&lexical).ok().and_then(|r| r.to_str().map(str::to_string)).unwrap_or(lexical);
            format!("file://{real}")
        }
        None => match decoded.strip_prefix("s3a://").or_else(|| decoded.strip_prefix("s3n://")) {
            Some(rest) => format!("s3://{rest}"),
            None => decoded,
        },
    }
}

/// Percent-decode `s` (`a%20b` -> `a b`): hive partition values, URLs from table logs.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type StoreKey = (String, String, u64, u32);
static STORES: Mutex<Option<HashMap<StoreKey, Arc<dyn ObjectStore>>>> = Mutex::new(None);

fn options_hash(opts: &StorageOptions) -> u64 {
    let mut h = DefaultHasher::new();
    opts.hash(&mut h);
    h.finish()
}

/// The object store for a location, cached per (scheme, bucket, options, pid).
pub fn store_for(loc: &Location, opts: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    let key: StoreKey = (
        loc.scheme().to_string(),
        loc.store_url.host_str().unwrap_or("").to_string(),
        options_hash(opts),
        std::process::id(),
    );
    let mut guard = STORES.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    // Inherited across fork: their HTTP clients belong to the parent's runtime. Leak them
    // rather than run their destructors in the child.
    let stale: Vec<StoreKey> = map.keys().filter(|k| k.3 != key.3).cloned().collect();
    for k in stale {
        std::mem::forget(map.remove(&k));
    }
    if let Some(s) = map.get(&key) {
        return Ok(s.clone());
    }
    let store = build_store(loc, opts)?;
    map.insert(key, store.clone());
    Ok(store)
}

fn bad_key(scheme: &str, key: &str) -> LakeError {
    LakeError::InvalidArgument(format!("unknown storage option '{key}' for {scheme}:// URIs"))
}

/// Apply `opts` to an object-store builder: each key is parsed as the service's config key
/// (`K`), else as a generic HTTP client key (`client` wraps it into `K`).
fn apply_options<B, K: FromStr>(
    mut builder: B,
    opts: &StorageOptions,
    scheme: &str,
    client: impl Fn(ClientConfigKey) -> K,
    set: impl Fn(B, K, &str) -> B,
) -> Result<B> {
    for (k, v) in opts.iter() {
        let key = K::from_str(k)
            .ok()
            .or_else(|| ClientConfigKey::from_str(k).ok().map(&client))
            .ok_or_else(|| bad_key(scheme, k))?;
        builder = set(builder, key, v);
    }
    Ok(builder)
}

fn build_store(loc: &Location, opts: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    register_env_secrets();
    let url = loc.store_url.as_str();
    let store: Arc<dyn ObjectStore> = match loc.scheme() {
        "file" => Arc::new(crate::lake::local_store::LocalStore::new()),
        "memory" => Arc::new(object_store::memory::InMemory::new()),
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
            let b = AmazonS3Builder::from_env().with_url(url);
            Arc::new(apply_options(b, opts, "s3", K::Client, |b, k, v| b.with_config(k, v))?.build()?)
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as K};
            let b = GoogleCloudStorageBuilder::from_env().with_url(url);
            Arc::new(apply_options(b, opts, "gs", K::Client, |b, k, v| b.with_config(k, v))?.build()?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            use object_store::azure::{AzureConfigKey as K, MicrosoftAzureBuilder};
            let b = MicrosoftAzureBuilder::from_env().with_url(url);
            Arc::new(apply_options(b, opts, "azure", K::Client, |b, k, v| b.with_config(k, v))?.build()?)
        }
        other => return Err(LakeError::InvalidArgument(format!("unsupported URI scheme '{other}'"))),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_drop_dot_segments() {
        assert_eq!(normalize_segments("work/main/../shared/./data/"), "work/shared/data");
        assert_eq!(normalize_segments("../x"), "x");
        let loc = parse_uri("/tmp/a/../b/t.parquet").unwrap();
        assert_eq!(loc.path.as_ref(), "tmp/b/t.parquet");
    }

    #[test]
    fn parses_plain_and_file_paths() {
        let l = parse_uri("/data/t").unwrap();
        assert_eq!(l.store_url.as_str(), "file:///");
        assert_eq!(l.path.as_ref(), "data/t");
        assert!(l.glob.is_none());
        let l2 = parse_uri("file:///data/t/").unwrap();
        assert_eq!(l2.path.as_ref(), "data/t");
    }

    #[test]
    fn parses_object_store_uris() {
        let l = parse_uri("s3://bucket/a/b.parquet").unwrap();
        assert_eq!(l.store_url.as_str(), "s3://bucket/");
        assert_eq!(l.path.as_ref(), "a/b.parquet");
        let l = parse_uri("s3a://bucket/a").unwrap();
        assert_eq!(l.scheme(), "s3");
        assert!(parse_uri("s3:///nobucket").is_err());
        assert!(parse_uri("ftp://x/y").is_err());
    }

    #[test]
    fn parses_globs() {
        let l = parse_uri("s3://b/data/year=*/part-*.parquet").unwrap();
        assert_eq!(l.path.as_ref(), "data");
        assert_eq!(l.glob.as_deref(), Some("data/year=*/part-*.parquet"));
    }

    #[test]
    fn secrets_are_redacted_and_hidden() {
        let o = StorageOptions::new([
            ("AWS_SECRET_ACCESS_KEY".to_string(), "s3cr3t-VALUE-123".to_string()),
            ("aws_region".to_string(), "us-east-1".to_string()),
        ]);
        assert!(!format!("{o:?}").contains("s3cr3t"));
        assert_eq!(redact("denied for s3cr3t-VALUE-123!"), "denied for ***!");
        assert_eq!(o.public().len(), 1);
    }

    #[test]
    fn encoded_and_short_secrets_are_redacted() {
        register_secret("sv=2020-08-04&sig=Ab+c/d=");
        register_secret("q7");
        let msg = "GET https://a.blob.core.windows.net/c?sv=2020-08-04&sig=Ab%2Bc%2Fd%3D failed; sig Ab+c/d=";
        let r = redact(msg);
        assert!(!r.contains("Ab%2Bc%2Fd%3D") && !r.contains("Ab+c/d="), "{r}");
        assert_eq!(redact("key q7, 'q7' but q77 and aq7 stay"), "key ***, '***' but q77 and aq7 stay");
        assert_eq!(redact("secret=q7&x, q7's, q7=1"), "secret=***&x, q7's, q7=1");
    }

    #[test]
    fn unknown_option_is_an_error() {
        let l = parse_uri("s3://bucket/x").unwrap();
        let o = StorageOptions::new([("no_such_option".to_string(), "1".to_string())]);
        let e = store_for(&l, &o).err().unwrap();
        assert!(e.to_string().contains("no_such_option"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn flags_are_not_secrets_and_proxy_credentials_are() {
        let o = StorageOptions::new([
            ("aws_skip_signature".to_string(), "true".to_string()),
            ("proxy_url".to_string(), "http://puser:ppass-9@proxy:3128".to_string()),
            ("aws_region".to_string(), "eu-west-1".to_string()),
        ]);
        assert_eq!(redact("filter 'true AND x' is true"), "filter 'true AND x' is true");
        assert!(!redact("via http://puser:ppass-9@proxy:3128").contains("ppass-9"));
        let public = o.public();
        assert_eq!(public.get("aws_skip_signature").map(String::as_str), Some("true"));
        assert!(!public.contains_key("proxy_url"));
        assert!(public.contains_key("aws_region"));
    }

    #[test]
    fn uris_in_messages_carry_no_credentials() {
        for (uri, secret) in [
            ("s3://AKIAKEY:se/cr@et@bucket/t", "se/cr"),
            ("s3://AKIAKEY:secret@bucket/t", "secret"),
            ("az://acct/c/t?sv=1&sig=abc%2Fdef", "abc"),
            ("s3://AKIAKEY:se cret@bu cket/t", "se cret"),
        ] {
            assert!(!without_credentials(uri).contains(secret), "{uri}");
            assert!(!without_credentials(uri).contains("AKIAKEY"), "{uri}");
            if let Err(e) = parse_uri(uri) {
                assert!(!e.to_string().contains(secret), "{e}");
            }
        }
        assert_eq!(without_credentials("s3://b/k"), "s3://b/k");
    }

    #[test]
    fn file_urls_compare_in_one_form() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("a b.parquet"), b"x").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let real_dir = std::fs::canonicalize(&real).unwrap();
        let want = format!("file://{}/a b.parquet", real_dir.display());
        let d = dir.path().display().to_string();
        for spelling in [
            format!("file://{d}/link/a%20b.parquet"),
            format!("file:{d}/real/a b.parquet"),
            format!("{d}/link/../real/./a b.parquet"),
            format!("file://localhost{d}/link/a b.parquet"),
        ] {
            assert_eq!(normal_file_url(&spelling), want, "{spelling}");
        }
        // missing files normalise lexically; other schemes only decode
        assert_eq!(normal_file_url("file:///no/such/../x.parquet"), "file:///no/x.parquet");
        assert_eq!(normal_file_url("s3a://b/k%3D1/f.parquet"), "s3://b/k=1/f.parquet");
    }
}
