//! Controllers known by name: [`ControllerConfig`], the type-erased [`BoxedController`], and the
//! [`ControllerRegistry`] that builds one from the other.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use candle_core::Tensor;
use ntm_params::Params;
use serde::{Deserialize, Serialize};

use crate::{
    Controller, ControllerError, FeedForward, FeedForwardConfig, Gru, GruConfig, Lstm, LstmConfig,
    Result,
};

/// A controller described by name: its registered kind, units per layer and layers, and any
/// further options a kind of its own may take.
///
/// ```text
/// kind = "lstm"
/// size = 100
/// layers = 1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerConfig {
    /// The kind's name in the registry (`ff`, `lstm`, `gru`, or a user's own).
    pub kind: String,
    /// Units per layer (the output size).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Number of layers.
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Further options of the kind (none for the built-in kinds).
    #[serde(flatten)]
    pub options: toml::Table,
}

fn default_size() -> usize {
    100
}

fn default_layers() -> usize {
    1
}

impl ControllerConfig {
    /// A controller of `kind` with `layers` layers of `size` units.
    pub fn new(kind: impl Into<String>, size: usize, layers: usize) -> Self {
        Self {
            kind: kind.into(),
            size,
            layers,
            options: toml::Table::new(),
        }
    }

    fn no_options(&self) -> Result<()> {
        match self.options.keys().next() {
            None => Ok(()),
            Some(key) => Err(ControllerError::Config(format!(
                "controller `{}` has no option `{key}` (it takes kind, size and layers)",
                self.kind
            ))),
        }
    }
}

/// The recurrent state of a [`BoxedController`]: the wrapped controller's state behind a shared
/// pointer.
#[derive(Clone)]
pub struct BoxedState(Arc<dyn Any + Send + Sync>);

impl fmt::Debug for BoxedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxedState")
    }
}

/// A [`Controller`] with its state type erased, so that controllers of any kind share one type.
trait DynController: Send + Sync {
    fn input_size(&self) -> usize;
    fn output_size(&self) -> usize;
    fn initial_state(&self, batch: usize) -> Result<BoxedState>;
    fn step(&self, input: &Tensor, state: &BoxedState) -> Result<(Tensor, BoxedState)>;
}

impl<C> DynController for C
where
    C: Controller + Send + Sync,
    C::State: Send + Sync + 'static,
{
    fn input_size(&self) -> usize {
        Controller::input_size(self)
    }

    fn output_size(&self) -> usize {
        Controller::output_size(self)
    }

    fn initial_state(&self, batch: usize) -> Result<BoxedState> {
        Ok(BoxedState(Arc::new(Controller::initial_state(
            self, batch,
        )?)))
    }

    fn step(&self, input: &Tensor, state: &BoxedState) -> Result<(Tensor, BoxedState)> {
        let state = state.0.downcast_ref::<C::State>().ok_or_else(|| {
            ControllerError::Config("the state belongs to a controller of another type".into())
        })?;
        let (output, next) = Controller::step(self, input, state)?;
        Ok((output, BoxedState(Arc::new(next))))
    }
}

/// Any controller behind one type: what the registry builds, and what lets a model hold a
/// controller chosen at run time.
#[derive(Clone)]
pub struct BoxedController(Arc<dyn DynController>);

impl BoxedController {
    /// Wraps `controller`.
    pub fn new<C>(controller: C) -> Self
    where
        C: Controller + Send + Sync + 'static,
        C::State: Send + Sync + 'static,
    {
        Self(Arc::new(controller))
    }
}

impl fmt::Debug for BoxedController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedController")
            .field("input_size", &self.0.input_size())
            .field("output_size", &self.0.output_size())
            .finish()
    }
}

impl Controller for BoxedController {
    type State = BoxedState;

    fn input_size(&self) -> usize {
        self.0.input_size()
    }

    fn output_size(&self) -> usize {
        self.0.output_size()
    }

    fn initial_state(&self, batch: usize) -> Result<BoxedState> {
        self.0.initial_state(batch)
    }

    fn step(&self, input: &Tensor, state: &BoxedState) -> Result<(Tensor, BoxedState)> {
        self.0.step(input, state)
    }
}

type Build = dyn Fn(&Params, usize, &ControllerConfig) -> Result<BoxedController> + Send + Sync;

/// One entry of a [`ControllerRegistry`]: a name and how to build that controller from
/// its parameters' scope, its input size and its config.
#[derive(Clone)]
pub struct ControllerKind {
    name: String,
    recurrent: bool,
    build: Arc<Build>,
}

impl fmt::Debug for ControllerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerKind")
            .field("name", &self.name)
            .field("recurrent", &self.recurrent)
            .finish_non_exhaustive()
    }
}

impl ControllerKind {
    /// A kind called `name`; `recurrent` says whether it keeps state between steps (the paper's
    /// hyperparameters differ for feedforward and recurrent controllers).
    pub fn new<C, F>(name: impl Into<String>, recurrent: bool, build: F) -> Self
    where
        C: Controller + Send + Sync + 'static,
        C::State: Send + Sync + 'static,
        F: Fn(&Params, usize, &ControllerConfig) -> Result<C> + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            recurrent,
            build: Arc::new(move |params, input, config| {
                Ok(BoxedController::new(build(params, input, config)?))
            }),
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the controller keeps state between steps.
    pub fn recurrent(&self) -> bool {
        self.recurrent
    }
}

/// The controllers known by name: `ff`, `lstm` and `gru` ([`ControllerRegistry::default`]),
/// and any a user registers.
///
/// ```
/// use candle_core::{DType, Device};
/// use ntm_controller::{Controller, ControllerConfig, ControllerRegistry};
/// use ntm_params::Params;
///
/// # fn main() -> Result<(), ntm_controller::ControllerError> {
/// let params = Params::new(0, DType::F32, &Device::Cpu);
/// let controllers = ControllerRegistry::default();
/// let lstm = controllers.build(&params, 12, &ControllerConfig::new("lstm", 32, 2))?;
/// assert_eq!((lstm.input_size(), lstm.output_size()), (12, 32));
/// assert!(controllers.build(&params, 12, &ControllerConfig::new("rnn", 32, 1)).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ControllerRegistry {
    kinds: Vec<ControllerKind>,
}

impl Default for ControllerRegistry {
    fn default() -> Self {
        Self {
            kinds: vec![
                ControllerKind::new("ff", false, |params, input, config| {
                    config.no_options()?;
                    let hidden = vec![config.size; config.layers];
                    FeedForward::new(params, input, &FeedForwardConfig { hidden })
                }),
                ControllerKind::new("lstm", true, |params, input, config| {
                    config.no_options()?;
                    Lstm::new(
                        params,
                        input,
                        &LstmConfig {
                            size: config.size,
                            layers: config.layers,
                        },
                    )
                }),
                ControllerKind::new("gru", true, |params, input, config| {
                    config.no_options()?;
                    Gru::new(
                        params,
                        input,
                        &GruConfig {
                            size: config.size,
                            layers: config.layers,
                        },
                    )
                }),
            ],
        }
    }
}

impl ControllerRegistry {
    /// A registry with no controllers.
    pub fn empty() -> Self {
        Self { kinds: Vec::new() }
    }

    /// Adds a kind; a name already taken is an error.
    pub fn register(&mut self, kind: ControllerKind) -> Result<()> {
        if self.get(kind.name()).is_some() {
            return Err(ControllerError::Config(format!(
                "a controller called `{}` is already registered",
                kind.name
            )));
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.iter().map(ControllerKind::name).collect()
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&ControllerKind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// Builds the controller `config` describes, taking `input_size` inputs, with its parameters
    /// in the scope of `params`.
    pub fn build(
        &self,
        params: &Params,
        input_size: usize,
        config: &ControllerConfig,
    ) -> Result<BoxedController> {
        let kind = self.get(&config.kind).ok_or_else(|| {
            ControllerError::Config(format!(
                "unknown controller `{}` (known: {})",
                config.kind,
                self.names().join(", ")
            ))
        })?;
        (kind.build)(params, input_size, config)
    }
}
