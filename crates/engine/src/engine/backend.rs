//! Finding and loading ONNX Runtime. The library is loaded at run time (`ort` with
//! `load-dynamic`). Where it comes from, in order: an explicit path (`AI.CONFIG LOADBACKEND ONNX
//! path`, the `onnxruntime-library` config, `ORT_DYLIB_PATH`); the `onnxruntime` package of the
//! local Python; a copy Locus provisioned before; and otherwise the pinned `onnxruntime` wheel,
//! which Locus installs from PyPI into its cache by itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The onnxruntime release Locus provisions and is built against (`ort`'s api-31).
pub const PINNED_VERSION: &str = "1.31.1";

/// A loaded ONNX Runtime.
pub struct OnnxBackend {
    pub env: ort::environment::Environment,
    pub path: PathBuf,
    pub version: String,
    /// Whether the library carries the CUDA execution provider (the onnxruntime-gpu wheel).
    pub has_cuda: bool,
}

/// Finds `libonnxruntime.so*` inside an `onnxruntime` package folder.
fn library_in_package(pkg: &Path) -> Option<PathBuf> {
    let capi = pkg.join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    // Prefer the fully versioned name (libonnxruntime.so.1.31.1) over symlinks.
    found.sort_by_key(|p| std::cmp::Reverse(p.to_string_lossy().len()));
    found.into_iter().next()
}

fn python() -> String {
    std::env::var("LOCUS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The `onnxruntime` package of the local Python, if it has one. Found without importing it
/// (the import loads numpy and the library: a quarter of a second, on every start).
fn from_python() -> Option<PathBuf> {
    let out = Command::new(python())
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); \
             print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    library_in_package(Path::new(&dir))
}

/// Where provisioned runtimes live: `$LOCUS_CACHE_DIR`, else `$XDG_CACHE_HOME/locus`, else
/// `~/.cache/locus`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("LOCUS_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("locus");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache").join("locus")
}

/// Installs the pinned wheel from PyPI into the cache (pip verifies the download).
fn provision() -> Result<PathBuf, String> {
    let target = cache_dir().join(format!("onnxruntime-{PINNED_VERSION}"));
    let pkg = target.join("onnxruntime");
    if let Some(lib) = library_in_package(&pkg) {
        return Ok(lib);
    }
    tracing::warn!(
        "ONNX Runtime not found: installing onnxruntime=={PINNED_VERSION} from PyPI into {}",
        target.display()
    );
    std::fs::create_dir_all(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&target)
        .arg(format!("onnxruntime=={PINNED_VERSION}"))
        .output()
        .map_err(|e| format!("cannot run pip to provision onnxruntime: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip could not install onnxruntime=={PINNED_VERSION}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    library_in_package(&pkg).ok_or_else(|| {
        format!(
            "onnxruntime wheel installed into {} has no libonnxruntime.so",
            target.display()
        )
    })
}

/// Resolves the library path following the documented order.
pub fn resolve(explicit: Option<&Path>) -> Result<(PathBuf, &'static str), String> {
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), "configuration"));
    }
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        if !p.is_empty() {
            return Ok((PathBuf::from(p), "ORT_DYLIB_PATH"));
        }
    }
    if let Some(p) = from_python() {
        return Ok((p, "the local Python's onnxruntime package"));
    }
    provision().map(|p| (p, "the onnxruntime wheel provisioned from PyPI"))
}

/// Loads ONNX Runtime from `path`. Loading twice is refused by `ort`; callers keep the first.
pub fn load(path: &Path) -> Result<OnnxBackend, String> {
    if !path.exists() {
        return Err(format!(
            "ONNX Runtime library not found at {}",
            path.display()
        ));
    }
    let builder = ort::init_from(path)
        .map_err(|e| format!("could not load ONNX Runtime from {}: {e}", path.display()))?;
    let env = builder
        .with_name("locus")
        .build()
        .map_err(|e| format!("could not start ONNX Runtime: {e}"))?;
    let version = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("libonnxruntime.so."))
        .unwrap_or("unknown")
        .to_string();
    // The GPU wheel ships the CUDA provider library beside the runtime.
    let has_cuda = path
        .parent()
        .is_some_and(|d| d.join("libonnxruntime_providers_cuda.so").exists());
    Ok(OnnxBackend {
        env,
        path: path.to_path_buf(),
        version,
        has_cuda,
    })
}
