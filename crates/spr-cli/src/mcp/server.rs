//! The MCP server both transports serve: the tools `run_python`, `create_session` and
//! `close_session`, their listing, and what `initialize` tells the client about the
//! policy.
//!
//! The profile of a call is never the model's to choose: it comes from the operator's
//! `--use-profile` (stdio) or from the URL the client was configured with (HTTP, put in
//! the request's extensions as a [`ProfileChoice`] by the transport), never from tool
//! arguments. A call may only lower the profile's time limit (`timeout_seconds`). A
//! session gets its policy when it is created (the profile of the `create_session` call,
//! narrowed by its `timeout_seconds`), so a `run_python` call in a session cannot set
//! one: `timeout_seconds` with `session_id` is a tool error saying so.
//!
//! A cancelled call drops its work: a cancelled cell kills its session's interpreter
//! (the session is lost, as over HTTP), a cancelled `create_session` leaves nothing.

use super::render;
use crate::front::{loggable, PolicyRefusal, Profiles};
use crate::serve::{log_run, log_session, EngineSlot, Outcome};
use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult,
    Extensions, Implementation, InitializeRequestParams, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};
use spr_core::{run_code_json, Json, PolicySource, RunError, RunnerPolicy, RunnerResult};
use spr_protocol::wire::mcp::{
    close_session_input_schema, close_session_output_schema, create_session_input_schema,
    create_session_output_schema, run_python_input_schema, runner_result_schema, CloseSessionArgs,
    CreateSessionArgs, RunPythonArgs, CLOSE_SESSION, CREATE_SESSION, RUN_PYTHON,
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
limits: see the server's instructions), unless `session_id` names a session from \
create_session: then variables, imports and files persist from call to call, and the value of \
the code's last expression comes back as `value`. Use it to calculate, transform data and \
check code.";

const CREATE_DESCRIPTION: &str = "Open a session: one sandboxed Python interpreter whose \
variables, imports and files persist from one run_python call to the next (pass the returned \
session_id to run_python). Use it for work done step by step, such as loading data once and \
exploring it. A run past its time limit is interrupted and the session keeps its state. Close \
it with close_session when done; an idle session is closed by the server after ttl_seconds.";

const CLOSE_DESCRIPTION: &str = "Close a session from create_session: its interpreter and \
everything in it (variables, files) are gone.";

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
        if let Some(session) = &args.session_id {
            if let Some(wanted) = args.timeout_seconds {
                return refused(
                    format!(
                        "timeout_seconds {wanted} cannot be set on a run in a session: a session's \
                         time limit is fixed when it is created (create_session's timeout_seconds); \
                         leave timeout_seconds out to run in session \"{}\"",
                        loggable(session)
                    ),
                    &base,
                );
            }
        }
        let policy = match self.narrowed(profile, &base, args.timeout_seconds) {
            Ok(policy) => policy,
            Err(message) => return refused(message, &base),
        };
        let Ok(_permit) = self.inner.admission.clone().try_acquire_owned() else {
            return refused(self.busy(), &policy);
        };
        let engine_failed = || {
            let result = RunnerResult::infrastructure_error(ENGINE_FAILED);
            (result, Outcome::EngineError, policy.clone())
        };
        if let Some(session) = &args.session_id {
            let sessions = match self.inner.slot.sessions().await {
                Ok(sessions) => sessions,
                Err(_) => return engine_failed(),
            };
            // The policy shown with the result is the profile's: the session's own may
            // have a lower time limit, which its timeout message names.
            return match sessions
                .run(session, &args.code, Some(args.input_data))
                .await
            {
                Ok(result) => {
                    let outcome = Outcome::of(&result);
                    (result, outcome, policy)
                }
                Err(RunError::Session(e)) => refused(e.to_string(), &policy),
                Err(e) => refused(format!("invalid arguments: {e}"), &policy),
            };
        }
        let engine = match self.inner.slot.get().await {
            Ok(engine) => engine,
            // The cause can name the server's paths: it goes to the operator's log
            // (EngineSlot logs it), not to the model.
            Err(_) => return engine_failed(),
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

    /// The profile's policy with its time limit lowered to `wanted`, or the message a
    /// model reads when `wanted` is above it.
    fn narrowed(
        &self,
        profile: &str,
        base: &RunnerPolicy,
        wanted: Option<u64>,
    ) -> Result<RunnerPolicy, String> {
        let Some(wanted) = wanted else {
            return Ok(base.clone());
        };
        let overrides = Map::from_iter([("timeout_seconds".to_string(), wanted.into())]);
        match self.inner.profiles.resolve(Some(profile), Some(&overrides)) {
            Ok(policy) => Ok(policy),
            Err(PolicyRefusal::Forbidden { .. }) => Err(format!(
                "timeout_seconds {wanted} is above this server's limit of {limit} s \
                 (profile \"{}\"): pass at most {limit}, or leave it out to get {limit}",
                loggable(profile),
                limit = base.timeout_seconds
            )),
            Err(e) => Err(format!("timeout_seconds {wanted}: {e}")),
        }
    }

    /// One `create_session` call: its tool result, how it ended, and the session's id.
    async fn create_session(
        &self,
        arguments: Option<&Map<String, Value>>,
        profile: &str,
        base: &RunnerPolicy,
    ) -> (CallToolResult, Outcome, Option<String>) {
        let refused = |message: String| (tool_error(message), Outcome::Refused, None);
        let args = match CreateSessionArgs::parse(arguments) {
            Ok(args) => args,
            Err(e) => return refused(format!("invalid arguments: {e}")),
        };
        let policy = match self.narrowed(profile, base, args.timeout_seconds) {
            Ok(policy) => policy,
            Err(message) => return refused(message),
        };
        if let Err(e) = spr_protocol::session_ttl(args.ttl_seconds) {
            return refused(format!("invalid arguments: {e}"));
        }
        let Ok(_permit) = self.inner.admission.clone().try_acquire_owned() else {
            return refused(self.busy());
        };
        let Ok(sessions) = self.inner.slot.sessions().await else {
            return (tool_error(ENGINE_FAILED.into()), Outcome::EngineError, None);
        };
        let limit = policy.timeout_seconds;
        match sessions
            .create(PolicySource::Policy(policy), args.ttl_seconds)
            .await
        {
            Ok(session) => {
                let text = format!(
                    "session_id: {session}\nA session is open: pass this session_id to run_python \
                     to run code in it; its variables, imports and files persist between calls. \
                     Each run may take at most {limit} s. Close it with close_session when done."
                );
                let mut out = CallToolResult::success(vec![ContentBlock::text(text)]);
                out.structured_content = Some(serde_json::json!({ "session_id": session }));
                (out, Outcome::Ok, Some(session))
            }
            Err(RunError::Session(e @ spr_core::SessionError::Start(_))) => {
                (tool_error(e.to_string()), Outcome::EngineError, None)
            }
            Err(e) => refused(e.to_string()),
        }
    }

    /// One `close_session` call: its tool result, how it ended, and the id it named.
    async fn close_session(
        &self,
        arguments: Option<&Map<String, Value>>,
    ) -> (CallToolResult, Outcome, Option<String>) {
        let args = match CloseSessionArgs::parse(arguments) {
            Ok(args) => args,
            Err(e) => {
                return (
                    tool_error(format!("invalid arguments: {e}")),
                    Outcome::Refused,
                    None,
                )
            }
        };
        let session = Some(args.session_id.clone());
        let Ok(sessions) = self.inner.slot.sessions().await else {
            return (
                tool_error(ENGINE_FAILED.into()),
                Outcome::EngineError,
                session,
            );
        };
        match sessions.close(&args.session_id).await {
            Ok(()) => {
                let text = format!("session \"{}\" is closed", loggable(&args.session_id));
                let mut out = CallToolResult::success(vec![ContentBlock::text(text)]);
                out.structured_content = Some(serde_json::json!({ "closed": true }));
                (out, Outcome::Ok, session)
            }
            Err(e) => (tool_error(e.to_string()), Outcome::Refused, session),
        }
    }

    fn busy(&self) -> String {
        format!(
            "spr is busy: {} calls are running or waiting; try again in a moment",
            self.inner.capacity
        )
    }
}

/// The message of a call that found the engine unable to start. The cause can name the
/// server's paths: it goes to the operator's log (EngineSlot logs it), not to the model.
const ENGINE_FAILED: &str = "the engine failed to start (the server's log says why)";

/// A tool error whose text is `message`.
fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Every tool, as a profile shapes them: `run_python`, `create_session`, `close_session`.
pub fn tools(policy: &RunnerPolicy) -> Vec<Tool> {
    vec![
        tool(policy),
        create_session_tool(policy),
        close_session_tool(),
    ]
}

fn create_session_tool(policy: &RunnerPolicy) -> Tool {
    Tool::new(
        CREATE_SESSION,
        CREATE_DESCRIPTION,
        Arc::new(create_session_input_schema(
            policy.timeout_seconds,
            spr_core::MAX_SESSION_TTL_SECONDS,
        )),
    )
    .with_title("Open a Python session")
    .with_raw_output_schema(Arc::new(create_session_output_schema()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    )
}

fn close_session_tool() -> Tool {
    Tool::new(
        CLOSE_SESSION,
        CLOSE_DESCRIPTION,
        Arc::new(close_session_input_schema()),
    )
    .with_title("Close a Python session")
    .with_raw_output_schema(Arc::new(close_session_output_schema()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(false),
    )
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
    // A result's raw JSON is made readable when it is built (`Json::readable`); were it
    // still not, the call is answered with the text alone rather than not at all.
    out.structured_content = serde_json::to_value(result).ok();
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
        Ok(ListToolsResult::with_all_items(tools(&policy)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        if ![RUN_PYTHON, CREATE_SESSION, CLOSE_SESSION].contains(&name) {
            // A protocol error, as MCP has it for a tool the server does not have.
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool \"{}\": spr has {RUN_PYTHON}, {CREATE_SESSION} and {CLOSE_SESSION}",
                    loggable(name)
                ),
                None,
            ));
        }
        let started = Instant::now();
        let id = Json::from_value(&serde_json::to_value(&context.id).unwrap_or_default());
        let (profile, base) = self.profile(&context.extensions)?;
        let arguments = request.arguments.as_ref();
        let call = async {
            match name {
                RUN_PYTHON => {
                    let (result, outcome, policy) =
                        self.run_python(arguments, &profile, base.clone()).await;
                    log_run("mcp", &id, &profile, outcome, started.elapsed());
                    tool_result(&result, &policy)
                }
                CREATE_SESSION => {
                    let (out, outcome, session) =
                        self.create_session(arguments, &profile, &base).await;
                    let took = started.elapsed();
                    log_session("mcp", "create", session.as_deref(), &profile, outcome, took);
                    out
                }
                _ => {
                    let (out, outcome, session) = self.close_session(arguments).await;
                    let took = started.elapsed();
                    log_session("mcp", "close", session.as_deref(), &profile, outcome, took);
                    out
                }
            }
        };
        // A cancelled request (`notifications/cancelled`, a dropped HTTP response, the
        // transport closing) drops the call: a run frees its worker at once, a cell in a
        // session kills the session's interpreter.
        tokio::select! {
            done = call => Ok(done.into()),
            () = context.ct.cancelled() => {
                if name == RUN_PYTHON {
                    log_run("mcp", &id, &profile, Outcome::Cancelled, started.elapsed());
                } else {
                    let op = if name == CREATE_SESSION { "create" } else { "close" };
                    log_session("mcp", op, None, &profile, Outcome::Cancelled, started.elapsed());
                }
                // Nobody reads this (the SDK drops the response of a cancelled request);
                // a result rather than an error keeps the SDK from logging a warning.
                Ok(tool_error("the call was cancelled".into()).into())
            }
        }
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
    fn the_session_tools_are_listed_after_run_python() {
        let policy = RunnerPolicy {
            timeout_seconds: 7,
            ..RunnerPolicy::default()
        };
        let tools = tools(&policy);
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, [RUN_PYTHON, CREATE_SESSION, CLOSE_SESSION]);
        insta::assert_json_snapshot!("session_tools", &tools[1..]);
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
