//! The plugin host: loads the SCIM component with wasmtime and answers each request with a
//! fresh instance, bounded in memory and time.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scim_plugin::{Request, Response, ScimError};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result, Store,
    StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cache;
use crate::settings::SettingsSource;
use crate::store::UserStore;

mod bindings {
    wasmtime::component::bindgen!({
        world: "scim-provider",
        path: "../wit",
    });
}

use bindings::scim::provider::{
    settings as wit_settings, types as wit_types, user_store as wit_store,
};
use bindings::{ScimProvider, ScimProviderPre};

/// The component built from `plugin/` by this crate's build script.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("SCIM_PLUGIN_WASM"));

/// How often the engine's epoch advances. Deadlines are counted in these ticks: 10 ms keeps the
/// ticker's cost negligible while a deadline is still met within a hundredth of a second.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What the guest may write to stderr per request (a panic message, mostly); more is dropped.
const STDERR_CAPTURE: usize = 16 * 1024;

/// The bounds every request runs within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may have. The component starts with about 1 MiB
    /// (its stack and data); 64 MiB holds a 1 MiB body parsed several times over, and a full
    /// pass over the store in slices, with room to spare.
    pub memory_bytes: usize,
    /// How long one request may run inside the component before it is stopped.
    pub deadline: Duration,
    /// How many instances may be live at once: the requests served in parallel.
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
            max_instances: 256,
        }
    }
}

/// One engine, one linker and one pre-instantiated component, shared by every request.
pub struct PluginHost {
    engine: Engine,
    pre: ScimProviderPre<RequestState>,
    limits: Limits,
    /// Held for its `Drop`, which stops the epoch thread with the host.
    _ticker: Arc<Ticker>,
}

impl PluginHost {
    /// Loads the component embedded in this binary.
    pub fn embedded(limits: Limits) -> Result<PluginHost> {
        PluginHost::new(EMBEDDED_COMPONENT, limits)
    }

    /// Compiles a component and links its imports.
    pub fn new(component: &[u8], limits: Limits) -> Result<PluginHost> {
        let engine = engine(&limits)?;
        let component =
            Component::new(&engine, component).context("compiling the SCIM component")?;
        PluginHost::from_component(engine, &component, limits)
    }

    /// Like [`PluginHost::new`], with the compiled code kept in `cache_dir` between runs (see
    /// [`crate::cache`]): a restart with the same component and engine skips compiling.
    pub fn cached(
        component: &[u8],
        limits: Limits,
        cache_dir: &Path,
    ) -> Result<(PluginHost, cache::Source)> {
        let engine = engine(&limits)?;
        let (component, source) = cache::load_or_compile(&engine, component, cache_dir)?;
        Ok((
            PluginHost::from_component(engine, &component, limits)?,
            source,
        ))
    }

    /// An engine configured as a host with these limits configures its own.
    pub fn engine_for(limits: &Limits) -> Result<Engine> {
        engine(limits)
    }

    /// Links the imports of an already compiled component.
    pub fn from_component(engine: Engine, component: &Component, limits: Limits) -> Result<Self> {
        let mut linker = Linker::<RequestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).context("linking WASI")?;
        ScimProvider::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .context("linking the user-store and settings imports")?;
        let pre = linker
            .instantiate_pre(component)
            .context("resolving the component's imports")?;
        let pre = ScimProviderPre::new(pre).context("checking the component's exports")?;
        let ticker = Arc::new(Ticker::start(engine.clone()));
        Ok(PluginHost {
            engine,
            pre,
            limits,
            _ticker: ticker,
        })
    }

    /// The same engine and component under other limits, without compiling again. The memory
    /// cap cannot exceed the one the engine's instance pool was sized for.
    pub fn with_limits(&self, limits: Limits) -> PluginHost {
        PluginHost {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits: Limits {
                memory_bytes: limits.memory_bytes.min(self.limits.memory_bytes),
                max_instances: self.limits.max_instances,
                ..limits
            },
            _ticker: self._ticker.clone(),
        }
    }

    /// The limits each request runs within.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The engine, configured for this host's limits.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Answers one request with a fresh instance. A trap, an exhausted memory cap or a missed
    /// deadline answers this request alone with a 500; the instance is then dropped.
    pub fn handle(
        &self,
        request: &Request,
        store: Arc<dyn UserStore>,
        settings: Arc<dyn SettingsSource>,
    ) -> Response {
        self.handle_timed(request, store, settings).0
    }

    /// [`PluginHost::handle`], also saying how long instantiating and calling the component
    /// took: the conformance runner reports them as the other hosts do.
    pub fn handle_timed(
        &self,
        request: &Request,
        store: Arc<dyn UserStore>,
        settings: Arc<dyn SettingsSource>,
    ) -> (Response, Timing) {
        let started = Instant::now();
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let mut wasm_store = Store::new(
            &self.engine,
            RequestState::new(store, settings, &stderr, &self.limits),
        );
        wasm_store.limiter(|state| &mut state.limits);
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1);
        wasm_store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));

        let mut instantiated = started;
        let outcome = self.pre.instantiate(&mut wasm_store).and_then(|instance| {
            instantiated = Instant::now();
            instance.call_handle_scim_request(&mut wasm_store, &to_wit(request))
        });
        let timing = Timing {
            instantiation: instantiated - started,
            call: instantiated.elapsed(),
        };
        let response = match outcome {
            Ok(response) => from_wit(response),
            Err(error) => {
                let kind = trap_kind(&error);
                let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
                tracing::error!(trap = kind, error = %format!("{error:#}"), stderr = %stderr, "the SCIM component failed a request");
                ScimError::new(500, format!("the request could not be completed ({kind})")).into()
            }
        };
        (response, timing)
    }
}

/// Where one request's time went: making its instance (store, WASI context, instantiation),
/// then the call into `handle-scim-request`, the store's calls included.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub instantiation: Duration,
    pub call: Duration,
}

/// A short name for why the component stopped, for logs and the error's detail.
fn trap_kind(error: &wasmtime::Error) -> &'static str {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "deadline exceeded",
        Some(Trap::UnreachableCodeReached) => "guest panic or out of memory",
        Some(Trap::StackOverflow) => "stack overflow",
        Some(Trap::MemoryOutOfBounds) => "memory out of bounds",
        Some(_) => "trap",
        None => "host error",
    }
}

/// The engine: pooling allocation, so that an instance per request is cheap, and epoch
/// interruption, so that a request can be stopped at its deadline.
fn engine(limits: &Limits) -> Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    // Resetting a used instance's memory is most of an instance's cost. With PAGEMAP_SCAN
    // (Linux 6.7+) only the pages the last request touched are reset, in place, up to 4 MiB,
    // instead of being unmapped and faulted back in. Without it, keeping memory resident would
    // mean clearing all 4 MiB every time, so it is kept only where the scan exists. Batching the
    // unmaps that remain saves TLB shootdowns. Measured with `scim-host bench` on this 2-core
    // machine: the floor went from 31 µs to 15 µs per request.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pooling
            .linear_memory_keep_resident(4 << 20)
            .pagemap_scan(wasmtime::Enabled::Yes);
    }
    pooling.decommit_batch_size(32);
    // The component's function table is filled lazily on each instance's first calls; when the
    // pool decommits it, every request pays a page fault and a zeroed page to fill it again
    // (a quarter of the faults per request under `perf`). 64 KiB holds the whole table. Measured
    // with `scim-host bench` (means of three interleaved runs): GET /Users/{id} 38 → 30 µs, POST
    // 40 → 31 µs through the component; 1 MiB gained nothing more. Tried and not kept, for lack of a measurable gain: 8 MiB of
    // linear memory kept resident, `cranelift_opt_level(SpeedAndSize)`, a 64 MiB
    // `memory_reservation` with a 64 KiB guard, `memory_init_cow(false)`; `table_lazy_init(false)`
    // made the floor slower (16 → 24 µs).
    pooling.table_keep_resident(64 << 10);
    pooling
        .total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances)
        .total_memories(limits.max_instances)
        .total_tables(limits.max_instances)
        .max_memory_size(limits.memory_bytes);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
        .epoch_interruption(true);
    Engine::new(&config).context("configuring the wasmtime engine")
}

/// Advances the engine's epoch every tick until the host is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("scim-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one request's instance can reach: the host's users and settings, and a WASI that grants
/// nothing (no files, no environment, no sockets; stderr goes to a capped buffer).
struct RequestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    store: Arc<dyn UserStore>,
    settings: Arc<dyn SettingsSource>,
}

impl RequestState {
    fn new(
        store: Arc<dyn UserStore>,
        settings: Arc<dyn SettingsSource>,
        stderr: &MemoryOutputPipe,
        limits: &Limits,
    ) -> RequestState {
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RequestState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(4)
                .build(),
            store,
            settings,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_types::Host for RequestState {}

impl wit_settings::Host for RequestState {
    fn current(&mut self) -> wit_settings::ScimSettings {
        let settings = self.settings.current();
        wit_settings::ScimSettings {
            enabled: settings.enabled,
            tokens: settings
                .tokens
                .into_iter()
                .map(|token| wit_settings::Token {
                    digest: token.digest,
                    expires_at: token.expires_at,
                })
                .collect(),
            base_url: settings.base_url,
            now: settings.now,
        }
    }
}

type WitResult<T> = Result<T, wit_store::StoreError>;

impl wit_store::Host for RequestState {
    fn get(&mut self, id: String) -> WitResult<Option<wit_store::User>> {
        self.store
            .get(&id)
            .map(|user| user.map(Into::into))
            .map_err(Into::into)
    }

    fn find_by_user_name(&mut self, user_name: String) -> WitResult<Option<wit_store::User>> {
        self.store
            .find_by_user_name(&user_name)
            .map(|u| u.map(Into::into))
            .map_err(Into::into)
    }

    fn find_by_external_id(&mut self, external_id: String) -> WitResult<Vec<wit_store::User>> {
        self.store
            .find_by_external_id(&external_id)
            .map(|users| users.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }

    fn find_by_email(&mut self, email: String) -> WitResult<Option<wit_store::User>> {
        self.store
            .find_by_email(&email)
            .map(|u| u.map(Into::into))
            .map_err(Into::into)
    }

    fn page(&mut self, offset: u64, limit: u32) -> WitResult<wit_store::UserPage> {
        self.store
            .page(offset, limit)
            .map(|page| wit_store::UserPage {
                users: page.users.into_iter().map(Into::into).collect(),
                total: page.total,
            })
            .map_err(Into::into)
    }

    fn scan(&mut self, cursor: Option<String>, limit: u32) -> WitResult<wit_store::ScanPage> {
        self.store
            .scan(cursor.as_deref(), limit)
            .map(|page| wit_store::ScanPage {
                users: page.users.into_iter().map(Into::into).collect(),
                next: page.next,
            })
            .map_err(Into::into)
    }

    fn create(&mut self, fields: wit_store::UserFields) -> WitResult<wit_store::User> {
        self.store
            .create(fields.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn update(
        &mut self,
        id: String,
        expected_version: u64,
        fields: wit_store::UserFields,
    ) -> WitResult<wit_store::User> {
        self.store
            .update(&id, expected_version, fields.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn delete(&mut self, id: String) -> WitResult<Option<wit_store::User>> {
        self.store
            .delete(&id)
            .map(|user| user.map(Into::into))
            .map_err(Into::into)
    }
}

impl From<scim_plugin::User> for wit_store::User {
    fn from(user: scim_plugin::User) -> Self {
        wit_store::User {
            id: user.id,
            email: user.email,
            user_name: user.user_name,
            given_name: user.given_name,
            family_name: user.family_name,
            active: user.active,
            external_id: user.external_id,
            created: user.created,
            modified: user.modified,
            version: user.version,
        }
    }
}

impl From<wit_store::UserFields> for scim_plugin::UserFields {
    fn from(fields: wit_store::UserFields) -> Self {
        scim_plugin::UserFields {
            email: fields.email,
            user_name: fields.user_name,
            given_name: fields.given_name,
            family_name: fields.family_name,
            active: fields.active,
            external_id: fields.external_id,
        }
    }
}

impl From<scim_plugin::StoreError> for wit_store::StoreError {
    fn from(error: scim_plugin::StoreError) -> Self {
        use scim_plugin::StoreError as E;
        match error {
            E::NotFound => wit_store::StoreError::NotFound,
            E::Conflict(attribute) => wit_store::StoreError::Conflict(attribute),
            E::VersionMismatch => wit_store::StoreError::VersionMismatch,
            E::Refused(reason) => wit_store::StoreError::Refused(reason),
            E::Unavailable(reason) => wit_store::StoreError::Unavailable(reason),
        }
    }
}

fn to_wit(request: &Request) -> wit_types::HttpRequest {
    wit_types::HttpRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| wit_types::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        body: request.body.clone(),
    }
}

fn from_wit(response: wit_types::HttpResponse) -> Response {
    Response {
        status: response.status,
        headers: response
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        body: response.body,
    }
}

/// One engine and compiled component for a whole process, for callers that want to share them
/// (tests compile the component once per binary).
pub fn shared_embedded() -> Result<&'static PluginHost> {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    if let Some(host) = HOST.get() {
        return Ok(host);
    }
    let host = PluginHost::embedded(Limits::default())?;
    Ok(HOST.get_or_init(|| host))
}
