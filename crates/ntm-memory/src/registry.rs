//! Memories known by name: [`MemoryConfig`], the type-erased [`BoxedMemory`], and the
//! [`MemoryRegistry`] that builds one from the other.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use candle_core::Tensor;
use ntm_params::Params;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Memory, MemoryError, MemoryTrace, NtmMemory, NtmMemoryConfig, Result};

/// A memory described by name: its registered kind and that kind's own options.
///
/// ```text
/// kind = "ntm"
/// rows = 128
/// width = 20
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// The kind's name in the registry (`ntm`, or a user's own).
    pub kind: String,
    /// The kind's own options.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl MemoryConfig {
    /// A memory of `kind` with every option at its default.
    pub fn named(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            options: toml::Table::new(),
        }
    }

    /// A memory of `kind` with the typed options `settings` (an [`NtmMemoryConfig`], say).
    pub fn from_settings<C: Serialize>(kind: impl Into<String>, settings: &C) -> Result<Self> {
        let kind = kind.into();
        let options = toml::Table::try_from(settings)
            .map_err(|e| MemoryError::Config(format!("memory `{kind}`: {e}")))?;
        Ok(Self { kind, options })
    }

    /// The options read as the typed settings `C`.
    pub fn settings<C: DeserializeOwned>(&self) -> Result<C> {
        serde_path_to_error::deserialize(toml::Value::Table(self.options.clone())).map_err(
            |e: serde_path_to_error::Error<toml::de::Error>| {
                MemoryError::Config(format!(
                    "memory `{}`: `{}`: {}",
                    self.kind,
                    e.path(),
                    e.inner().message()
                ))
            },
        )
    }
}

/// The state of a [`BoxedMemory`]: the wrapped memory's state behind a shared pointer, and its
/// read vectors.
#[derive(Clone)]
pub struct BoxedMemoryState {
    inner: Arc<dyn Any + Send + Sync>,
    reads: Tensor,
}

impl fmt::Debug for BoxedMemoryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedMemoryState")
            .field("reads", &self.reads.dims())
            .finish_non_exhaustive()
    }
}

/// A [`Memory`] with its state type erased.
trait DynMemory: Send + Sync {
    fn interface_size(&self) -> usize;
    fn read_size(&self) -> usize;
    fn initial_state(&self, batch: usize) -> Result<BoxedMemoryState>;
    fn step(&self, interface: &Tensor, state: &BoxedMemoryState) -> Result<BoxedMemoryState>;
    fn trace(&self, state: &BoxedMemoryState) -> Option<MemoryTrace>;
}

fn boxed<M: Memory>(memory: &M, state: M::State) -> BoxedMemoryState
where
    M::State: Send + Sync + 'static,
{
    BoxedMemoryState {
        reads: memory.reads(&state),
        inner: Arc::new(state),
    }
}

impl<M> DynMemory for M
where
    M: Memory + Send + Sync,
    M::State: Send + Sync + 'static,
{
    fn interface_size(&self) -> usize {
        Memory::interface_size(self)
    }

    fn read_size(&self) -> usize {
        Memory::read_size(self)
    }

    fn initial_state(&self, batch: usize) -> Result<BoxedMemoryState> {
        Ok(boxed(self, Memory::initial_state(self, batch)?))
    }

    fn step(&self, interface: &Tensor, state: &BoxedMemoryState) -> Result<BoxedMemoryState> {
        let state = state.inner.downcast_ref::<M::State>().ok_or_else(|| {
            MemoryError::Config("the state belongs to a memory of another type".into())
        })?;
        Ok(boxed(self, Memory::step(self, interface, state)?))
    }

    fn trace(&self, state: &BoxedMemoryState) -> Option<MemoryTrace> {
        let state = state.inner.downcast_ref::<M::State>()?;
        Some(Memory::trace(self, state))
    }
}

/// Any memory behind one type: what the registry builds, and what lets a model hold a memory
/// chosen at run time.
#[derive(Clone)]
pub struct BoxedMemory(Arc<dyn DynMemory>);

impl BoxedMemory {
    /// Wraps `memory`.
    pub fn new<M>(memory: M) -> Self
    where
        M: Memory + Send + Sync + 'static,
        M::State: Send + Sync + 'static,
    {
        Self(Arc::new(memory))
    }
}

impl fmt::Debug for BoxedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedMemory")
            .field("interface_size", &self.0.interface_size())
            .field("read_size", &self.0.read_size())
            .finish()
    }
}

impl Memory for BoxedMemory {
    type State = BoxedMemoryState;

    fn interface_size(&self) -> usize {
        self.0.interface_size()
    }

    fn read_size(&self) -> usize {
        self.0.read_size()
    }

    fn initial_state(&self, batch: usize) -> Result<BoxedMemoryState> {
        self.0.initial_state(batch)
    }

    fn reads(&self, state: &BoxedMemoryState) -> Tensor {
        state.reads.clone()
    }

    fn step(&self, interface: &Tensor, state: &BoxedMemoryState) -> Result<BoxedMemoryState> {
        self.0.step(interface, state)
    }

    /// The wrapped memory's trace; a state from a memory of another type (which a model never
    /// passes) shows only its reads.
    fn trace(&self, state: &BoxedMemoryState) -> MemoryTrace {
        self.0.trace(state).unwrap_or_else(|| MemoryTrace {
            memory: state.reads.clone(),
            read_weights: state.reads.clone(),
            write_weights: state.reads.clone(),
            extra: Vec::new(),
        })
    }
}

type Build = dyn Fn(&Params, &MemoryConfig) -> Result<BoxedMemory> + Send + Sync;
type Defaults = dyn Fn() -> Result<toml::Table> + Send + Sync;

/// One entry of a [`MemoryRegistry`]: a name, how to build that memory from its parameters'
/// scope and its options, and its default options.
#[derive(Clone)]
pub struct MemoryKind {
    name: String,
    build: Arc<Build>,
    defaults: Arc<Defaults>,
}

impl fmt::Debug for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKind")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MemoryKind {
    /// A kind whose options are the serde fields of `C` (`C::default()` gives the defaults;
    /// mark `C` `#[serde(default, deny_unknown_fields)]`); `build` makes the memory from them.
    pub fn new<C, M, F>(name: impl Into<String>, build: F) -> Self
    where
        C: Default + Serialize + DeserializeOwned + 'static,
        M: Memory + Send + Sync + 'static,
        M::State: Send + Sync + 'static,
        F: Fn(&Params, &C) -> Result<M> + Send + Sync + 'static,
    {
        let name = name.into();
        let defaults_name = name.clone();
        Self {
            name,
            build: Arc::new(move |params, config| {
                Ok(BoxedMemory::new(build(params, &config.settings::<C>()?)?))
            }),
            defaults: Arc::new(move || {
                Ok(MemoryConfig::from_settings(defaults_name.clone(), &C::default())?.options)
            }),
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The memories known by name: `ntm` ([`MemoryRegistry::default`]) and any a user registers.
///
/// ```
/// use candle_core::{DType, Device};
/// use ntm_memory::{Memory, MemoryConfig, MemoryRegistry};
/// use ntm_params::Params;
///
/// # fn main() -> Result<(), ntm_memory::MemoryError> {
/// let params = Params::new(0, DType::F32, &Device::Cpu);
/// let memories = MemoryRegistry::default();
/// let mut config = MemoryConfig::named("ntm");
/// config.options.insert("rows".into(), toml::Value::Integer(16));
/// config.options.insert("read_heads".into(), toml::Value::Integer(2));
/// let memory = memories.build(&params, &config)?;
/// assert_eq!(memory.read_size(), 2 * 20);
/// assert!(memories.build(&params, &MemoryConfig::named("tape")).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryRegistry {
    kinds: Vec<MemoryKind>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self {
            kinds: vec![MemoryKind::new(
                "ntm",
                |params, config: &NtmMemoryConfig| NtmMemory::new(params, config),
            )],
        }
    }
}

impl MemoryRegistry {
    /// A registry with no memories.
    pub fn empty() -> Self {
        Self { kinds: Vec::new() }
    }

    /// Adds a kind; a name already taken is an error.
    pub fn register(&mut self, kind: MemoryKind) -> Result<()> {
        if self.get(kind.name()).is_some() {
            return Err(MemoryError::Config(format!(
                "a memory called `{}` is already registered",
                kind.name
            )));
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.iter().map(MemoryKind::name).collect()
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&MemoryKind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    fn kind(&self, name: &str) -> Result<&MemoryKind> {
        self.get(name).ok_or_else(|| {
            MemoryError::Config(format!(
                "unknown memory `{name}` (known: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The config of memory `kind` with every option at its default.
    pub fn default_config(&self, kind: &str) -> Result<MemoryConfig> {
        Ok(MemoryConfig {
            kind: kind.to_string(),
            options: (self.kind(kind)?.defaults)()?,
        })
    }

    /// Builds the memory `config` describes, with its parameters in the scope of `params`.
    pub fn build(&self, params: &Params, config: &MemoryConfig) -> Result<BoxedMemory> {
        (self.kind(&config.kind)?.build)(params, config)
    }
}
