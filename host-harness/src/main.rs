//! The `scim-host` command line: serve SCIM over HTTP, and manage its settings, its users and
//! its activity log in the SQLite file the server uses (changes apply to a running server).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use scim_host::activity::{ActivityLog, Entry};
use scim_host::db::Database;
use scim_host::server::{self, BASE_PATH, DEFAULT_MAX_BODY_BYTES, Service};
use scim_host::settings::sqlite::{self as stored, DEFAULT_TOKEN_VALIDITY, SqliteSettings};
use scim_host::settings::{DeleteAction, now_seconds};
use scim_host::store::now_millis;
use scim_host::store::sqlite::{Role, SqliteStore};
use scim_host::{Limits, PluginHost};

/// The address `serve` listens on unless told otherwise, and the base URL the command line
/// shows when none is configured.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Who the activity log names for changes made here.
const CLI_AGENT: &str = "scim-host (command line)";

/// The longest a token may be issued for: ten years. A token is a standing credential; one that
/// outlives the people who set it up is a liability, and a far-off expiry would overflow.
const MAX_TOKEN_DAYS: u64 = 3_650;

/// Writes one line to standard output and returns the error where `println!` would panic: a
/// closed pipe (`scim-host users | head -1`) or a full disk is then an error like any other.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

#[derive(Parser)]
#[command(
    name = "scim-host",
    version,
    about = "A SCIM 2.0 service provider for Users"
)]
struct Cli {
    /// The SQLite database with the users, the settings and the activity log.
    #[arg(long, global = true, default_value = "scim-host.db")]
    db: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves SCIM over HTTP under /scim/v2; on a fresh database, turns SCIM on and prints the
    /// endpoint and a token.
    Serve {
        /// The address and port to listen on (port 0: any free port).
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A SCIM component to run instead of the one built into this binary.
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// The largest request body accepted; larger ones get 413.
        #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// Where the compiled component is kept between runs, so that a restart skips
        /// compiling it [default: the database's path with `.cache` appended].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Shows or changes the SCIM settings.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Lists the users with their state and role, or changes one.
    Users {
        #[command(subcommand)]
        command: Option<UsersCommand>,
    },
    /// Replays the conformance suites (JSON files) against the component; fails if any case does.
    Conformance {
        /// The folder of suites.
        #[arg(default_value = "tests")]
        suites: PathBuf,
        /// A SCIM component to check instead of the one built into this binary.
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// Measures the cost of the WebAssembly boundary: the same requests natively, through the
    /// component with a fresh instance each, and a fixed answer through the same path.
    Bench {
        /// Users in each store.
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Runs of each request each way.
        #[arg(long, default_value_t = 5_000)]
        iterations: u32,
        /// Runs of POST and PATCH over SQLite. Each waits for a sync of the disk (0.25 to 4 ms
        /// on the development machine): 300 runs take seconds and give a stable mean.
        #[arg(long, default_value_t = 300)]
        write_iterations: u32,
        /// A SCIM component to measure instead of the one built into this binary.
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Instead of measuring: adds `--users` users (`userN@example.com`, externalId `ext-N`,
        /// N from 0) to the database given by `--db` through the store's bulk path, and reports
        /// the rate. The HTTP benchmarks under `bench/` seed the server this way.
        #[arg(long)]
        seed: bool,
    },
    /// Lists the latest provisioning actions, newest first.
    Activity {
        /// How many entries to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Turns SCIM on and prints the endpoint and a new token (earlier tokens stop working).
    Enable {
        /// The public URL of the SCIM base, as identity providers reach it.
        #[arg(long)]
        base_url: Option<String>,
        /// How many days the new token works (1 to 3650).
        #[arg(long, default_value_t = default_token_days(),
              value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_DAYS))]
        token_days: u64,
    },
    /// Turns SCIM off: every request gets 403.
    Disable,
    /// Prints a new token; the old one stops working at once.
    RotateToken {
        /// How many days the new token works (1 to 3650).
        #[arg(long, default_value_t = default_token_days(),
              value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_DAYS))]
        token_days: u64,
    },
    /// Shows the settings (never a token).
    Show,
    /// Sets one setting.
    Set {
        #[command(subcommand)]
        setting: Setting,
    },
}

#[derive(Subcommand)]
enum Setting {
    /// What DELETE does: `delete` removes the user, `suspend` keeps them suspended.
    DeleteAction {
        #[arg(value_parser = ["delete", "suspend"])]
        action: String,
    },
    /// Whether administrators are out of SCIM's reach (`true`: no suspend, no delete). The last
    /// active administrator is never suspended or deleted through SCIM either way.
    ProtectAdmins {
        #[arg(action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
        protect: bool,
    },
    /// The public URL of the SCIM base, used in `Location` and `meta.location`; an empty one
    /// clears it (the server then uses its own address).
    BaseUrl { url: String },
    /// The requests a second each token may make (0: no limit); past it, 429 with
    /// Retry-After, which Entra ID and Okta honour.
    RateLimit { per_second: u32 },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Lists the users (the default).
    List,
    /// Adds a user that did not come from SCIM, with the email as userName.
    Add {
        email: String,
        /// Makes the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Makes the user with this email an administrator.
    MakeAdmin { email: String },
    /// Makes the administrator with this email a plain user.
    RevokeAdmin { email: String },
}

fn default_token_days() -> u64 {
    DEFAULT_TOKEN_VALIDITY.as_secs() / 86_400
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`scim-host users | head -1`): it has what it wanted.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if !matches!(cli.command, Command::Conformance { .. })
        && !matches!(cli.command, Command::Bench { seed: false, .. })
    {
        check_database_folder(&cli.db)?;
    }
    let reads_only = match &cli.command {
        Command::Settings { command } => matches!(command, SettingsCommand::Show),
        Command::Users { command } => matches!(command, None | Some(UsersCommand::List)),
        Command::Activity { .. } => true,
        _ => false,
    };
    if reads_only && !cli.db.exists() {
        anyhow::bail!(
            "there is no database at {}: `scim-host serve` or `scim-host settings enable` \
             creates one (or give --db the path of yours)",
            cli.db.display()
        );
    }

    match cli.command {
        Command::Serve {
            listen,
            plugin,
            max_body_bytes,
            cache_dir,
        } => {
            let cache_dir = cache_dir.unwrap_or_else(|| default_cache_dir(&cli.db));
            serve(
                &cli.db,
                listen,
                plugin.as_deref(),
                max_body_bytes,
                &cache_dir,
            )
        }
        Command::Settings { command } => settings(&cli.db, command),
        Command::Users { command } => users(&cli.db, command.unwrap_or(UsersCommand::List)),
        Command::Activity { limit } => activity(&cli.db, limit),
        Command::Conformance { suites, plugin } => conformance(&suites, plugin.as_deref()),
        Command::Bench {
            users,
            iterations,
            write_iterations,
            plugin,
            seed,
        } => {
            if seed {
                seed_users(&cli.db, users)
            } else {
                bench(users, iterations, write_iterations, plugin.as_deref())
            }
        }
    }
}

fn bench(
    users: usize,
    iterations: u32,
    write_iterations: u32,
    plugin: Option<&Path>,
) -> anyhow::Result<()> {
    let host = load_plugin(plugin)?;
    let tables = scim_host::bench::both_stores(&host, users, iterations, write_iterations)?;
    say!(
        "{users} users, {iterations} runs of each request ({write_iterations} of the writes over \
         SQLite), one request at a time"
    )?;
    scim_host::bench::print(&tables, &mut std::io::stdout())
}

fn seed_users(db_path: &Path, users: usize) -> anyhow::Result<()> {
    let db = Database::open(db_path)?;
    let store = SqliteStore::new(db);
    let started = std::time::Instant::now();
    let added = store
        .create_many((0..users).map(scim_host::bench::seed_user))
        .map_err(|error| anyhow::anyhow!("seeding the users: {error:?}"))?;
    let elapsed = started.elapsed();
    say!(
        "seeded {added} users in {:.2} s ({:.0} users/s)",
        elapsed.as_secs_f64(),
        added as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    )?;
    Ok(())
}

fn load_plugin(plugin: Option<&Path>) -> anyhow::Result<PluginHost> {
    match plugin {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the component {}", path.display()))?;
            Ok(PluginHost::new(&bytes, Limits::default())?)
        }
        None => Ok(PluginHost::embedded(Limits::default())?),
    }
}

fn conformance(suites: &Path, plugin: Option<&Path>) -> anyhow::Result<()> {
    let host = load_plugin(plugin)?;
    let failed = scim_host::conformance::run_all(&host, suites, &mut std::io::stdout())?;
    if failed > 0 {
        anyhow::bail!("{failed} conformance case(s) failed");
    }
    Ok(())
}

/// `<db>.cache`: beside the database, owned by whoever owns the database.
fn default_cache_dir(db_path: &Path) -> PathBuf {
    let mut dir = db_path.as_os_str().to_owned();
    dir.push(".cache");
    PathBuf::from(dir)
}

/// Refuses a database path whose folder does not exist, rather than creating folders on a
/// mistyped `--db` (and a fresh, empty install there).
fn check_database_folder(db_path: &Path) -> anyhow::Result<()> {
    let folder = match db_path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!(
            "the folder {} of the database {} does not exist",
            folder.display(),
            db_path.display()
        );
    }
    Ok(())
}

fn serve(
    db_path: &Path,
    listen: SocketAddr,
    plugin: Option<&Path>,
    max_body_bytes: usize,
    cache_dir: &Path,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let from_file;
    let component = match plugin {
        Some(path) => {
            from_file = std::fs::read(path)
                .with_context(|| format!("reading the component {}", path.display()))?;
            from_file.as_slice()
        }
        None => scim_host::component::EMBEDDED_COMPONENT,
    };
    // The database first: a path that cannot be opened must not leave a cache folder behind.
    let db = Database::open(db_path)?;
    let (host, source) = PluginHost::cached(component, Limits::default(), cache_dir)?;
    tracing::info!(
        from = ?source,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "loaded the SCIM component"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let default_base_url = format!("http://{address}{BASE_PATH}");

        if !stored::is_initialized(&db)? {
            // A fresh database: one command gives a working endpoint.
            let base_url = stored::load(&db)?
                .base_url
                .unwrap_or_else(|| default_base_url.clone());
            say!("endpoint: {base_url}")?;
            stored::enable_delivering(&db, None, DEFAULT_TOKEN_VALIDITY, |token| {
                say!("token: {token}")
            })?;
        }

        let settings = Arc::new(SqliteSettings::new(db.clone(), &default_base_url)?);
        let service = Arc::new(Service::new(
            Arc::new(host),
            Arc::new(SqliteStore::new(db.clone())),
            settings,
            Arc::new(ActivityLog::new(db.clone())),
            max_body_bytes,
        ));
        // Scripts wait for this line; a server whose standard output is gone serves all the
        // same.
        if let Err(error) = say!("listening: http://{address}{BASE_PATH}") {
            tracing::warn!(error = %error, "could not print the listening line");
        }
        tracing::info!(address = %address, db = %db.path().display(), "serving SCIM");
        server::serve(listener, service, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "SIGTERM cannot be caught; SIGINT still stops");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn settings(db_path: &Path, command: SettingsCommand) -> anyhow::Result<()> {
    let db = Database::open(db_path)?;
    match command {
        SettingsCommand::Enable {
            base_url,
            token_days,
        } => {
            // Printed before the change commits, so it is worked out as the change will store it.
            let endpoint = match base_url.as_deref() {
                Some(url) => stored::normalize_base_url(url)?.unwrap_or_else(default_endpoint),
                None => shown_base_url(&db)?,
            };
            stored::enable_delivering(&db, base_url.as_deref(), days(token_days), |token| {
                say!("endpoint: {endpoint}")?;
                say!("token: {token}")
            })?;
        }
        SettingsCommand::Disable => {
            stored::disable(&db)?;
            say!("enabled: false")?;
        }
        SettingsCommand::RotateToken { token_days } => {
            stored::rotate_token_delivering(&db, days(token_days), |token| say!("token: {token}"))?;
        }
        SettingsCommand::Show => show_settings(&db)?,
        SettingsCommand::Set { setting } => match setting {
            Setting::DeleteAction { action } => {
                let action: DeleteAction = action.parse()?;
                stored::set_delete_action(&db, action)?;
                say!("delete-action: {}", action.as_str())?;
            }
            Setting::ProtectAdmins { protect } => {
                stored::set_protect_admins(&db, protect)?;
                say!("protect-admins: {protect}")?;
            }
            Setting::BaseUrl { url } => {
                stored::set_base_url(&db, &url)?;
                say!("base-url: {}", shown_base_url(&db)?)?;
            }
            Setting::RateLimit { per_second } => {
                stored::set_rate_limit(&db, per_second)?;
                say!(
                    "rate-limit: {}",
                    shown_rate_limit(NonZeroU32::new(per_second))
                )?;
            }
        },
    }
    Ok(())
}

fn days(count: u64) -> Duration {
    Duration::from_secs(count.saturating_mul(86_400))
}

/// The configured base URL, or the one `serve` would use on its default address.
fn shown_base_url(db: &Database) -> anyhow::Result<String> {
    Ok(stored::load(db)?.base_url.unwrap_or_else(default_endpoint))
}

/// The endpoint of `serve` on its default address.
fn default_endpoint() -> String {
    format!("http://{DEFAULT_LISTEN}{BASE_PATH}")
}

fn shown_rate_limit(per_second: Option<NonZeroU32>) -> String {
    match per_second {
        Some(limit) => format!("{limit}/s per token"),
        None => "none".to_string(),
    }
}

fn show_settings(db: &Database) -> anyhow::Result<()> {
    let settings = stored::load(db)?;
    say!("enabled: {}", settings.enabled)?;
    match &settings.base_url {
        Some(url) => say!("base-url: {url}")?,
        None => say!("base-url: (not set: http://LISTEN-ADDRESS{BASE_PATH})")?,
    }
    say!(
        "delete-action: {}",
        settings.policies.delete_action.as_str()
    )?;
    say!("protect-admins: {}", settings.policies.protect_admins)?;
    say!("rate-limit: {}", shown_rate_limit(settings.rate_limit))?;
    if settings.tokens.is_empty() {
        say!("tokens: none")?;
    }
    let now = now_seconds();
    for token in &settings.tokens {
        let expiry = match token.expires_at {
            Some(at) if at <= now => format!("expired {}", format_time(at * 1000)),
            Some(at) => format!("expires {}", format_time(at * 1000)),
            None => "never expires".to_string(),
        };
        say!(
            "token: created {}, {expiry}",
            format_time(token.created * 1000)
        )?;
    }
    Ok(())
}

fn users(db_path: &Path, command: UsersCommand) -> anyhow::Result<()> {
    let db = Database::open(db_path)?;
    let store = SqliteStore::new(db.clone());
    let log = ActivityLog::new(db);
    let record = |action: &str, email: &str| {
        log.record(&Entry {
            at: now_millis(),
            action: action.to_string(),
            outcome: "ok".to_string(),
            target: Some(email.to_string()),
            detail: None,
            user_agent: Some(CLI_AGENT.to_string()),
        });
    };
    match command {
        UsersCommand::List => {
            say!("email\tuserName\tstate\trole\tid\texternalId")?;
            for account in store.accounts()? {
                let user = &account.user;
                say!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    user.email,
                    user.user_name,
                    account.state(),
                    if account.administrator {
                        "administrator"
                    } else {
                        "user"
                    },
                    user.id,
                    user.external_id.as_deref().unwrap_or("-"),
                )?;
            }
        }
        UsersCommand::Add { email, admin } => {
            let role = if admin {
                Role::Administrator
            } else {
                Role::User
            };
            let user = store.add_account(&email, role)?;
            record("add", &email);
            say!("id: {}", user.id)?;
        }
        UsersCommand::MakeAdmin { email } => {
            store.set_role(&email, Role::Administrator)?;
            record("make-admin", &email);
            say!("administrator: {email}")?;
        }
        UsersCommand::RevokeAdmin { email } => {
            store.set_role(&email, Role::User)?;
            record("revoke-admin", &email);
            say!("user: {email}")?;
        }
    }
    Ok(())
}

fn activity(db_path: &Path, limit: u32) -> anyhow::Result<()> {
    let db = Database::open(db_path)?;
    say!("time\taction\toutcome\ttarget\tuser-agent\tdetail")?;
    for entry in ActivityLog::new(db).recent(limit)? {
        say!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            format_time(entry.at),
            entry.action,
            entry.outcome,
            entry.target.as_deref().unwrap_or("-"),
            entry.user_agent.as_deref().unwrap_or("-"),
            entry.detail.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch as UTC RFC 3339 (`2025-06-01T12:00:00Z`).
fn format_time(millis: u64) -> String {
    let seconds = millis / 1000;
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    // Days to a civil date in the proleptic Gregorian calendar (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_767_225_599_000), "2025-12-31T23:59:59Z");
    }
}
