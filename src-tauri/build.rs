//! Tauri's build step: reads `tauri.conf.json` and the icon into the app's context.

fn main() {
    tauri_build::build()
}
