//! Start at login, the XDG way: a desktop entry in `$XDG_CONFIG_HOME/autostart/` that
//! every freedesktop session (GNOME, KDE, Xfce, ...) runs at login. It starts the app
//! hidden, in the tray.

use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc::UnboundedSender;

use crate::dashboard::{DesktopSettingError, DesktopSettings};
use crate::notify::runtime::Control;

/// The entry's file name; `cpwatch.desktop` also names the app for notification servers.
pub const FILE_NAME: &str = "cpwatch.desktop";

#[derive(Debug, Clone)]
pub struct Autostart {
    /// `$XDG_CONFIG_HOME/autostart/cpwatch.desktop`.
    pub file: PathBuf,
    /// The program the entry starts: this executable.
    pub program: PathBuf,
    /// The icon the entry shows.
    pub icon: Option<PathBuf>,
}

impl Autostart {
    /// The entry for this user and this executable, when a config directory is known.
    pub fn for_user(icon: Option<PathBuf>) -> Option<Autostart> {
        let file = dirs::config_dir()?.join("autostart").join(FILE_NAME);
        let program = std::env::current_exe().ok()?;
        Some(Autostart { file, program, icon })
    }

    /// Whether the session will start the app at login. Per the XDG autostart spec an
    /// entry with `Hidden=true` is one the user turned off.
    pub fn enabled(&self) -> bool {
        std::fs::read_to_string(&self.file)
            .map(|text| !text.lines().any(|l| l.trim().eq_ignore_ascii_case("hidden=true")))
            .unwrap_or(false)
    }

    /// Writes or removes the entry.
    pub fn set(&self, on: bool) -> io::Result<()> {
        if on {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written aside and renamed, so a session never reads half an entry.
            let partial = self.file.with_extension("desktop.partial");
            std::fs::write(&partial, self.entry())?;
            std::fs::rename(&partial, &self.file)
        } else {
            match std::fs::remove_file(&self.file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }

    /// The desktop entry's text.
    pub fn entry(&self) -> String {
        let icon = self.icon.as_deref().map_or_else(|| "cpwatch".to_string(), |p| p.display().to_string());
        format!(
            "[Desktop Entry]\n\
             Type=Application\n\
             Name=cpwatch\n\
             Comment=Receives ActiGraph CentrePoint webhooks and tells you when an upload fails\n\
             Exec={} --hidden\n\
             Icon={icon}\n\
             Terminal=false\n\
             Categories=Science;Utility;\n\
             X-GNOME-Autostart-enabled=true\n",
            exec_argument(&self.program)
        )
    }
}

/// Start at login as both the tray's toggle and the dashboard's Settings change it; the
/// tray (and what the dashboard shows) is redrawn after every change.
pub struct AtLogin {
    pub autostart: Option<Autostart>,
    pub control: UnboundedSender<Control>,
}

impl DesktopSettings for AtLogin {
    fn start_at_login(&self) -> Option<bool> {
        self.autostart.as_ref().map(Autostart::enabled)
    }

    fn set_start_at_login(&self, on: bool) -> Result<(), DesktopSettingError> {
        let Some(autostart) = &self.autostart else {
            tracing::warn!("no configuration directory is known: cannot start at login");
            return Err(DesktopSettingError::NoAutostartDirectory);
        };
        let changed = autostart.set(on);
        // Redrawn either way, so the check mark shows what is true.
        let _ = self.control.send(Control::Redraw);
        match changed {
            Ok(()) => {
                let state = if on { "on" } else { "off" };
                tracing::info!("start at login {state}: {}", autostart.file.display());
                Ok(())
            }
            Err(source) => {
                let error = DesktopSettingError::Write { path: autostart.file.clone(), source };
                tracing::error!("{error}");
                Err(error)
            }
        }
    }
}

/// One argument of a desktop entry's `Exec` key, quoted as the spec requires: inside
/// double quotes, `"`, `` ` ``, `$` and `\` are escaped, and `%` (field codes) is doubled.
fn exec_argument(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    if plain {
        return text;
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    // A desktop entry value escapes backslashes once more (`\\` reads as `\`).
    quoted.replace('\\', "\\\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_in(dir: &Path, program: &str) -> Autostart {
        Autostart {
            file: dir.join("autostart").join(FILE_NAME),
            program: PathBuf::from(program),
            icon: Some(dir.join("cpwatch.png")),
        }
    }

    #[test]
    fn turning_start_at_login_on_writes_an_entry_that_starts_hidden_and_off_removes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let autostart = entry_in(dir.path(), "/opt/cpwatch/cpwatch-desktop");
        assert!(!autostart.enabled(), "off before anything is written");
        autostart.set(true).expect("write the entry");
        assert!(autostart.enabled());
        let text = std::fs::read_to_string(&autostart.file).expect("entry");
        assert!(text.starts_with("[Desktop Entry]\n"), "{text}");
        assert!(text.contains("\nExec=/opt/cpwatch/cpwatch-desktop --hidden\n"), "{text}");
        assert!(text.contains("\nType=Application\n"), "{text}");
        autostart.set(true).expect("writing twice is fine");
        autostart.set(false).expect("remove the entry");
        assert!(!autostart.file.exists());
        autostart.set(false).expect("removing twice is fine");
    }

    #[test]
    fn an_entry_the_user_hid_counts_as_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let autostart = entry_in(dir.path(), "/usr/bin/cpwatch-desktop");
        autostart.set(true).expect("write");
        let hidden = format!("{}Hidden=true\n", autostart.entry());
        std::fs::write(&autostart.file, hidden).expect("hide");
        assert!(!autostart.enabled());
    }

    #[test]
    fn a_program_path_with_spaces_or_specials_is_quoted_for_exec() {
        assert_eq!(exec_argument(Path::new("/home/a b/cpwatch-desktop")), "\"/home/a b/cpwatch-desktop\"");
        assert_eq!(exec_argument(Path::new("/x/100%/$app")), "\"/x/100%%/\\\\$app\"");
    }
}
