//! The MCP server both transports serve: the tool `run_python`, its listing, and what
//! `initialize` tells the client about the policy.
//!
//! The profile of a call is never the model's to choose: it comes from the operator's
//! `--use-profile` (stdio) or from the URL the client was configured with (HTTP, put in
//! the request's extensions as a [`ProfileChoice`] by the transport), never from tool
//! arguments. A call may only lower the profile's time limit (`timeout_seconds`).

use super::render;
use crate::front::{loggable, PolicyRefusal, Profiles};
use crate::serve::{log_run, EngineSlot, Outcome};
use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    Extensions, Implementation, InitializeRequestParams, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};
use spr_core::{run_code_json, Json, PolicySource, RunnerPolicy, RunnerResult};
use spr_protocol::wire::mcp::{
    run_python_input_schema, runner_result_schema, RunPythonArgs, RUN_PYTHON,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Calls that may wait for a worker beyond those running. More are refused at once
/// ("busy"), so that a flood of calls holds a bounded amount of memory.
pub const MAX_WAITING_CALLS: usize = 64;

const TOOL_DESCRIPTION: &str = "Run Python 3 code in a sandbox and get back the value of its \
`result` variable, its stdout and stderr, and the error if it failed. Each call is a fresh \
process under the operator's policy (blocked imports and builtins, time, memory and output \
limits: see the server's instructions). Use it to calculate, transform data and check code.";

/// The profile an HTTP request picked through its URL (`None`: the default profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChoice(pub Option<String>);

/// The handler. Cheap to clone: the HTTP transport makes one per request.
#[derive(Debug, Clone)]
pub struct SprMcp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    profiles: Profiles,
    /// The profile of calls that carry no [`ProfileChoice`]: `--use-profile` on stdio.
    fixed: Option<String>,
    slot: Arc<EngineSlot>,
    /// A permit for every call running or waiting for a worker.
    admission: Arc<Semaphore>,
    capacity: usize,
}

impl SprMcp {
    /// `fixed` must name a profile of `profiles` (the caller checks it at start-up).
    pub fn new(profiles: Profiles, fixed: Option<String>, slot: Arc<EngineSlot>) -> SprMcp {
        let capacity = slot.capacity() + MAX_WAITING_CALLS;
        SprMcp {
            inner: Arc::new(Inner {
                profiles,
                fixed,
                slot,
                admission: Arc::new(Semaphore::new(capacity)),
                capacity,
            }),
        }
    }

    /// Calls taken at once, running or waiting for a worker; more are "busy".
    pub fn call_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The profile name a request runs under (`None`: the default).
    fn choice<'a>(&'a self, extensions: &'a Extensions) -> Option<&'a str> {
        match extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<ProfileChoice>())
        {
            Some(ProfileChoice(choice)) => choice.as_deref(),
            None => self.inner.fixed.as_deref(),
        }
    }

    fn profile(&self, extensions: &Extensions) -> Result<(String, RunnerPolicy), McpError> {
        let choice = self.choice(extensions);
        // The transports let only configured names through; this is the backstop.
        let policy = self
            .inner
            .profiles
            .resolve(choice, None)
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        Ok((choice.unwrap_or("default").to_string(), policy))
    }

    fn config_for(&self, extensions: &Extensions) -> Result<ServerConfig, McpError> {
        let (name, policy) = self.profile(extensions)?;
        Ok(self
            .get_info()
            .with_instructions(render::instructions(&name, &policy)))
    }

    /// One `run_python` call, start to end: the result and how it ended. Nothing here
    /// fails the request itself: every refusal is a result the model can read.
    async fn run_python(
        &self,
        arguments: Option<&Map<String, Value>>,
        profile: &str,
        base: RunnerPolicy,
    ) -> (RunnerResult, Outcome, RunnerPolicy) {
        let refused = |message: String, policy: &RunnerPolicy| {
            (
                RunnerResult::invalid_request(message),
                Outcome::Refused,
                policy.clone(),
            )
        };
        let args = match RunPythonArgs::parse(arguments) {
            Ok(args) => args,
            Err(e) => return refused(format!("invalid arguments: {e}"), &base),
        };
        if let Some(id) = &args.session_id {
            return refused(
                format!(
                    "session_id \"{}\": sessions are not available in this version of spr; \
                     leave session_id out (every call runs in a fresh process)",
                    loggable(id)
                ),
                &base,
            );
        }
        let policy = match args.timeout_seconds {
            None => base,
            Some(wanted) => {
                let overrides = Map::from_iter([("timeout_seconds".to_string(), wanted.into())]);
                let choice = Some(profile);
                match self.inner.profiles.resolve(choice, Some(&overrides)) {
                    Ok(policy) => policy,
                    Err(PolicyRefusal::Forbidden { .. }) => {
                        return refused(
                            format!(
                                "timeout_seconds {wanted} is above this server's limit of {limit} s \
                                 (profile \"{}\"): pass at most {limit}, or leave it out to get {limit}",
                                loggable(profile),
                                limit = base.timeout_seconds
                            ),
                            &base,
                        )
                    }
                    Err(e) => return refused(format!("timeout_seconds {wanted}: {e}"), &base),
                }
            }
        };
        let Ok(_permit) = self.inner.admission.clone().try_acquire_owned() else {
            return refused(
                format!(
                    "spr is busy: {} calls are running or waiting; try again in a moment",
                    self.inner.capacity
                ),
                &policy,
            );
        };
        let engine = match self.inner.slot.get().await {
            Ok(engine) => engine,
            // The cause can name the server's paths: it goes to the operator's log
            // (EngineSlot logs it), not to the model.
            Err(_) => {
                let result = RunnerResult::infrastructure_error(
                    "the engine failed to start (the server's log says why)",
                );
                return (result, Outcome::EngineError, policy);
            }
        };
        let run = run_code_json(
            &args.code,
            &*engine,
            Some(args.input_data),
            PolicySource::Policy(policy.clone()),
        );
        match run.await {
            Ok(result) => {
                let outcome = Outcome::of(&result);
                (result, outcome, policy)
            }
            Err(e) => refused(format!("invalid arguments: {e}"), &policy),
        }
    }
}

/// The tool as a profile shapes it: the schema's time limit, and the hints that depend
/// on what runs may reach.
pub fn tool(policy: &RunnerPolicy) -> Tool {
    let sealed = !policy.sandbox.network && policy.sandbox.extra_write_paths.is_empty();
    Tool::new(
        RUN_PYTHON,
        TOOL_DESCRIPTION,
        Arc::new(run_python_input_schema(policy.timeout_seconds)),
    )
    .with_title("Run Python")
    .with_raw_output_schema(Arc::new(runner_result_schema()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(sealed)
            .destructive(!sealed)
            .open_world(policy.sandbox.network),
    )
}

/// A result as the tool returns it: text for the model, the RunnerResult as
/// `structuredContent`, and `isError` when the run did not succeed.
pub fn tool_result(result: &RunnerResult, policy: &RunnerPolicy) -> CallToolResult {
    let mut text = vec![ContentBlock::text(render::result_text(result, policy))];
    // Figures are images a model can look at; the same data stays in structuredContent.
    text.extend(
        result
            .outputs
            .iter()
            .map(|o| ContentBlock::image(o.data.clone(), o.mime_type.clone())),
    );
    let mut out = if result.ok {
        CallToolResult::success(text)
    } else {
        CallToolResult::error(text)
    };
    out.structured_content = Some(serde_json::to_value(result).expect("results serialize"));
    out
}

impl ServerHandler for SprMcp {
    fn get_info(&self) -> ServerConfig {
        let default = self.inner.fixed.as_deref().unwrap_or("default");
        let instructions = match self
            .inner
            .profiles
            .resolve(self.inner.fixed.as_deref(), None)
        {
            Ok(policy) => render::instructions(default, &policy),
            Err(_) => String::new(),
        };
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("spr", env!("CARGO_PKG_VERSION"))
                    .with_title("spr: sandboxed Python"),
            )
            .with_instructions(instructions)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let mut info = self.negotiate_initialize(&request)?;
        info.instructions = self.config_for(&context.extensions)?.instructions;
        Ok(info)
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, McpError> {
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.config_for(&context.extensions)?,
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let (_, policy) = self.profile(&context.extensions)?;
        Ok(ListToolsResult::with_all_items(vec![tool(&policy)]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != RUN_PYTHON {
            // A protocol error, as MCP has it for a tool the server does not have.
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool \"{}\": spr has one tool, {RUN_PYTHON}",
                    loggable(&request.name)
                ),
                None,
            ));
        }
        let started = Instant::now();
        let id = Json::from_value(&serde_json::to_value(&context.id).unwrap_or_default());
        let (profile, base) = self.profile(&context.extensions)?;
        let call = self.run_python(request.arguments.as_ref(), &profile, base);
        // A cancelled request (`notifications/cancelled`, a dropped HTTP response, the
        // transport closing) drops the run, which frees its worker at once.
        let (result, outcome, policy) = tokio::select! {
            done = call => done,
            () = context.ct.cancelled() => {
                log_run("mcp", &id, &profile, Outcome::Cancelled, started.elapsed());
                // Nobody reads this (the SDK drops the response of a cancelled request);
                // a result rather than an error keeps the SDK from logging a warning.
                let cancelled = RunnerResult::invalid_request("the call was cancelled");
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    cancelled.error.clone().unwrap_or_default(),
                )])
                .into());
            }
        };
        log_run("mcp", &id, &profile, outcome, started.elapsed());
        Ok(tool_result(&result, &policy).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_under_the_default_profile() {
        let tool = tool(&RunnerPolicy::default());
        insta::assert_json_snapshot!(tool);
    }

    #[test]
    fn a_failed_run_is_a_tool_error_with_the_result_inside() {
        let result = RunnerResult::invalid_request("invalid arguments: missing argument \"code\"");
        let out = tool_result(&result, &RunnerPolicy::default());
        assert_eq!(out.is_error, Some(true));
        let structured = out.structured_content.unwrap();
        assert_eq!(structured["exit_code"], 2);
        assert_eq!(structured["ok"], false);
    }

    #[test]
    fn figures_come_after_the_text_as_images() {
        let mut result = RunnerResult::invalid_request("");
        result.ok = true;
        result.error = None;
        result.outputs = vec![spr_core::Output {
            mime_type: "image/png".into(),
            data: "iVBORw0KGgo=".into(),
        }];
        let out = tool_result(&result, &RunnerPolicy::default());
        let content = serde_json::to_value(&out.content).unwrap();
        assert_eq!(content[0]["type"], "text");
        assert!(
            content[0]["text"].as_str().unwrap().contains("figures: 1"),
            "{content}"
        );
        assert_eq!(
            content[1],
            serde_json::json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"})
        );
        assert_eq!(
            out.structured_content.unwrap()["outputs"][0]["data"],
            "iVBORw0KGgo="
        );
    }
}
