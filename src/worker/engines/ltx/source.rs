//! The engine's Python source, carried in the binary so a worker host needs only the binary and
//! the engine's Python environment. Written to a directory on `PYTHONPATH` before each start.
use std::path::Path;

const FILES: [(&str, &str); 14] = [
    ("__init__.py", include_str!("../../../../engines/ltx/ltx_engine/__init__.py")),
    ("protocol.py", include_str!("../../../../engines/ltx/ltx_engine/protocol.py")),
    ("flags.py", include_str!("../../../../engines/ltx/ltx_engine/flags.py")),
    ("setup.py", include_str!("../../../../engines/ltx/ltx_engine/setup.py")),
    ("resident.py", include_str!("../../../../engines/ltx/ltx_engine/resident.py")),
    ("loras.py", include_str!("../../../../engines/ltx/ltx_engine/loras.py")),
    ("checkpoint.py", include_str!("../../../../engines/ltx/ltx_engine/checkpoint.py")),
    ("outputs.py", include_str!("../../../../engines/ltx/ltx_engine/outputs.py")),
    ("server.py", include_str!("../../../../engines/ltx/ltx_engine/server.py")),
    ("plan.py", include_str!("../../../../engines/ltx/ltx_engine/plan.py")),
    ("weights.py", include_str!("../../../../engines/ltx/ltx_engine/weights.py")),
    // weights.py reads the full-size config from beside itself.
    ("ltx23_full.json", include_str!("../../../../engines/ltx/ltx_engine/ltx23_full.json")),
    ("placement.py", include_str!("../../../../engines/ltx/ltx_engine/placement.py")),
    ("modes.py", include_str!("../../../../engines/ltx/ltx_engine/modes.py")),
];

pub fn write_to(dir: &Path) -> std::io::Result<()> {
    let package = dir.join("ltx_engine");
    std::fs::create_dir_all(&package)?;
    for (name, text) in FILES {
        std::fs::write(package.join(name), text)?;
    }
    Ok(())
}
