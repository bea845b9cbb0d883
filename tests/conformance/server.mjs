#!/usr/bin/env node
// Reference MCP server for the conformance runs, built on the TypeScript SDK v2
// (@modelcontextprotocol/server, @modelcontextprotocol/node). It registers the
// fixtures the conformance suite's server scenarios call by name (tools, resources,
// prompts) and serves them either way interpose reaches a backend:
//
//   node server.mjs --port 3000   HTTP at http://127.0.0.1:3000/mcp. 2026-07-28
//                                 requests (per-request _meta envelope) go to the
//                                 SDK's createMcpHandler; 2025-era requests get a
//                                 stateful session (NodeStreamableHTTPServerTransport
//                                 with an event store), as the suite expects.
//   node server.mjs --stdio       stdio through the SDK's serveStdio.
//
// The SDK repository's own conformance server is not published to npm, so this is
// our own fixture set; the fixture names and answers are the ones the scenarios check.
import { randomUUID } from 'node:crypto';
import http from 'node:http';

import {
    acceptedContent,
    classifyInboundRequest,
    CLIENT_CAPABILITIES_META_KEY,
    createMcpHandler,
    createRequestStateCodec,
    fromJsonSchema,
    inputRequired,
    isInitializeRequest,
    McpServer,
    ProtocolError,
    ProtocolErrorCode,
    ResourceTemplate,
} from '@modelcontextprotocol/server';
import { localhostHostValidation, NodeStreamableHTTPServerTransport, toNodeHandler } from '@modelcontextprotocol/node';
import * as z from 'zod/v4';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const noArgs = z.object({});
const objectSchema = (properties, required) => ({ type: 'object', properties, required });
const askName = (message = 'What is your name?') =>
    inputRequired.elicit({ message, requestedSchema: objectSchema({ name: { type: 'string' } }, ['name']) });
const askConfirm = () =>
    inputRequired.elicit({ message: 'Please confirm', requestedSchema: objectSchema({ ok: { type: 'boolean' } }, ['ok']) });
const askLlm = (prompt, maxTokens = 50) =>
    inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens });

// requestState comes back from the client: seal it so tampered state is refused
// (input-required-result-tampered-state). One key per process: the 2026-07-28 path
// builds a fresh server per request, only the state survives between rounds.
const requestState = createRequestStateCodec({ key: crypto.getRandomValues(new Uint8Array(32)) });
const mint = (payload) => requestState.mint({ ...payload, nonce: randomUUID() });

let modernHandler; // set in serveHttp; the list-changed trigger tools publish on its bus

function createServer() {
    const server = new McpServer(
        { name: 'interpose-conformance-server', version: '1.0.0' },
        {
            capabilities: {
                tools: { listChanged: true },
                resources: { subscribe: true, listChanged: true },
                prompts: { listChanged: true },
                logging: {}, // 2025 era only; 2026-07-28 uses the per-request envelope
                completions: {},
            },
            requestState: { verify: requestState.verify },
        },
    );
    const log = (level, data) =>
        server.server.notification({ method: 'notifications/message', params: { level, logger: 'conformance', data } }).catch(() => {});

    const tool = (name, description, inputSchema, handler) => server.registerTool(name, { description, inputSchema }, handler);

    // ----- tools: content types -----
    tool('test_simple_text', 'simple text', noArgs, async () => text('This is a simple text response for testing.'));
    tool('test_image_content', 'image', noArgs, async () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }));
    tool('test_audio_content', 'audio', noArgs, async () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }));
    tool('test_embedded_resource', 'embedded resource', noArgs, async () => ({
        content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
    }));
    tool('test_multiple_content_types', 'text, image and resource', noArgs, async () => ({
        content: [
            { type: 'text', text: 'Multiple content types test:' },
            { type: 'image', data: PNG, mimeType: 'image/png' },
            { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
        ],
    }));
    tool('test_error_handling', 'always fails', noArgs, async () => {
        throw new Error('This tool intentionally returns an error for testing');
    });

    // ----- tools: notifications during a call -----
    tool('test_tool_with_logging', 'logs three messages', noArgs, async (_args, ctx) => {
        for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
            await ctx.mcpReq.notify({ method: 'notifications/message', params: { level: 'info', data } });
            await sleep(50);
        }
        return text('Tool with logging executed successfully');
    });
    tool('test_tool_with_progress', 'reports progress', noArgs, async (_args, ctx) => {
        const progressToken = ctx.mcpReq._meta?.progressToken ?? 0;
        for (const progress of [0, 50, 100]) {
            await ctx.mcpReq.notify({
                method: 'notifications/progress',
                params: { progressToken, progress, total: 100, message: `Completed step ${progress} of 100` },
            });
            await sleep(50);
        }
        return text(String(progressToken));
    });
    tool('test_logging_tool', 'logs through the logLevel-gated channel', noArgs, async (_args, ctx) => {
        await ctx.mcpReq.log('info', 'test_logging_tool ran');
        return text('logged');
    });
    tool('test_reconnection', 'closes the SSE stream mid-call (SEP-1699)', noArgs, async (_args, ctx) => {
        const transport = ctx.sessionId ? sessions.get(ctx.sessionId)?.transport : undefined;
        if (transport && ctx.mcpReq.id !== undefined) transport.closeSSEStream(ctx.mcpReq.id);
        await sleep(100);
        return text('Reconnection test completed successfully.');
    });

    // ----- tools: server-to-client requests (2025 era) -----
    tool('test_sampling', 'asks the client for a completion', z.object({ prompt: z.string() }), async (args, ctx) => {
        const result = await ctx.mcpReq.send({
            method: 'sampling/createMessage',
            params: { messages: [{ role: 'user', content: { type: 'text', text: args.prompt } }], maxTokens: 100 },
        });
        return text(`LLM response: ${result?.content?.text ?? 'No response'}`);
    });
    tool('test_elicitation', 'asks the user', z.object({ message: z.string() }), async (args, ctx) => {
        const result = await ctx.mcpReq.send({
            method: 'elicitation/create',
            params: { message: args.message, requestedSchema: objectSchema({ response: { type: 'string' } }, ['response']) },
        });
        return text(`User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    });
    tool('test_elicitation_sep1034_defaults', 'elicitation with defaults', noArgs, async (_args, ctx) => {
        const result = await ctx.mcpReq.send({
            method: 'elicitation/create',
            params: {
                message: 'Please review and update the form fields with defaults',
                requestedSchema: objectSchema({
                    name: { type: 'string', description: 'User name', default: 'John Doe' },
                    age: { type: 'integer', description: 'User age', default: 30 },
                    score: { type: 'number', description: 'User score', default: 95.5 },
                    status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
                    verified: { type: 'boolean', description: 'Verification status', default: true },
                }, []),
            },
        });
        return text(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    });
    tool('test_elicitation_sep1330_enums', 'elicitation with enum schemas', noArgs, async (_args, ctx) => {
        const result = await ctx.mcpReq.send({
            method: 'elicitation/create',
            params: {
                message: 'Please select options from the enum fields',
                requestedSchema: objectSchema({
                    untitledSingle: { type: 'string', description: 'untitled single', enum: ['option1', 'option2', 'option3'] },
                    titledSingle: {
                        type: 'string', description: 'titled single',
                        oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }],
                    },
                    legacyEnum: { type: 'string', description: 'legacy titled', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
                    untitledMulti: { type: 'array', description: 'untitled multi', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
                    titledMulti: {
                        type: 'array', description: 'titled multi',
                        items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] },
                    },
                }, []),
            },
        });
        return text(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`);
    });

    // ----- tools: schemas and headers -----
    tool('json_schema_2020_12_tool', 'JSON Schema 2020-12 features', fromJsonSchema({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        $defs: { address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
        properties: {
            name: { type: 'string' }, address: { $ref: '#/$defs/address' },
            contactMethod: { type: 'string', enum: ['phone', 'email'] }, phone: { type: 'string' }, email: { type: 'string' },
        },
        allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
        if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
        then: { required: ['phone'] },
        else: { required: ['email'] },
        additionalProperties: false,
    }), async (args) => text(`JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`));
    tool('test_x_mcp_header', 'SEP-2243 Mcp-Param-* validation', fromJsonSchema({
        type: 'object',
        properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, level: { type: 'integer' } },
    }), async (args) => text(`region=${args.region ?? '<none>'}`));

    // ----- tools: 2026-07-28 input-required results (SEP-2322) and SEP-2575 fixtures -----
    tool('test_missing_capability', 'needs the sampling client capability', noArgs, async (_args, ctx) =>
        ctx.mcpReq.inputResponses?.llm_answer === undefined
            ? inputRequired({ inputRequests: { llm_answer: askLlm('Reply with the single word: pong', 16) } })
            : text('sampling round-trip complete'));
    tool('test_streaming_elicitation', 'plain result, no top-level requests', noArgs, async () => text('result frames only'));
    tool('test_input_required_result_elicitation', 'elicits a name', noArgs, async (_args, ctx) => {
        const name = acceptedContent(ctx.mcpReq.inputResponses, 'user_name')?.name;
        return typeof name === 'string' ? text(`Hello, ${name}!`) : inputRequired({ inputRequests: { user_name: askName() } });
    });
    tool('test_input_required_result_sampling', 'asks for a completion', noArgs, async (_args, ctx) => {
        const answer = ctx.mcpReq.inputResponses?.capital_question;
        if (answer === undefined) return inputRequired({ inputRequests: { capital_question: askLlm('What is the capital of France?', 100) } });
        return text(`Sampling response: ${answer?.content?.text ?? JSON.stringify(answer)}`);
    });
    tool('test_input_required_result_list_roots', 'asks for roots', noArgs, async (_args, ctx) => {
        const roots = ctx.mcpReq.inputResponses?.client_roots?.roots;
        if (!Array.isArray(roots)) return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
        return text(`Client exposed ${roots.length} root(s): ${roots.map((r) => r.uri).join(', ')}`);
    });
    tool('test_input_required_result_request_state', 'round-trips requestState', noArgs, async (_args, ctx) => {
        if (acceptedContent(ctx.mcpReq.inputResponses, 'confirm') === undefined) {
            return inputRequired({ inputRequests: { confirm: askConfirm() }, requestState: await mint({ tool: 'request_state' }) });
        }
        if (ctx.mcpReq.requestState() === undefined) {
            throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Invalid requestState: missing or failed integrity verification');
        }
        return text('state-ok: requestState verified and confirmation received');
    });
    tool('test_input_required_result_multiple_inputs', 'elicitation, sampling and roots in one round', noArgs, async (_args, ctx) => {
        const responses = ctx.mcpReq.inputResponses;
        const name = acceptedContent(responses, 'user_name')?.name;
        const greeting = responses?.greeting?.content?.text;
        const roots = responses?.client_roots?.roots;
        if (typeof name !== 'string' || typeof greeting !== 'string' || !Array.isArray(roots)) {
            return inputRequired({
                inputRequests: { user_name: askName(), greeting: askLlm('Generate a greeting'), client_roots: inputRequired.listRoots() },
                requestState: await mint({ tool: 'multiple_inputs' }),
            });
        }
        return text(`${greeting} ${name}, ${roots.length} root(s) visible`);
    });
    tool('test_input_required_result_multi_round', 'two elicitation rounds', noArgs, async (_args, ctx) => {
        const state = ctx.mcpReq.requestState();
        const round = state?.tool === 'multi_round' && typeof state.round === 'number' ? state.round : 0;
        if (round === 0) {
            return inputRequired({ inputRequests: { step1: askName('Step 1: What is your name?') }, requestState: await mint({ tool: 'multi_round', round: 1 }) });
        }
        if (round === 1) {
            const name = acceptedContent(ctx.mcpReq.inputResponses, 'step1')?.name ?? 'unknown';
            const step2 = inputRequired.elicit({
                message: 'Step 2: What is your favorite color?',
                requestedSchema: objectSchema({ color: { type: 'string' } }, ['color']),
            });
            return inputRequired({ inputRequests: { step2 }, requestState: await mint({ tool: 'multi_round', round: 2, name }) });
        }
        const color = acceptedContent(ctx.mcpReq.inputResponses, 'step2')?.color ?? 'unknown';
        return text(`Multi-round complete: ${String(state?.name ?? 'unknown')} likes ${color}`);
    });
    tool('test_input_required_result_tampered_state', 'refuses tampered requestState', noArgs, async (_args, ctx) => {
        if (ctx.mcpReq.requestState() !== undefined && acceptedContent(ctx.mcpReq.inputResponses, 'confirm') !== undefined) {
            return text('integrity-ok: requestState verified');
        }
        return inputRequired({ inputRequests: { confirm: askConfirm() }, requestState: await mint({ tool: 'tampered_state' }) });
    });
    tool('test_input_required_result_capabilities', 'asks only for what the client declared', noArgs, async (_args, ctx) => {
        if (ctx.mcpReq.inputResponses !== undefined) return text('Capability-aware input requests fulfilled');
        const declared = ctx.mcpReq.envelope?.[CLIENT_CAPABILITIES_META_KEY];
        const inputRequests = {};
        if (declared?.elicitation !== undefined) inputRequests.user_name = askName();
        if (declared?.sampling !== undefined) inputRequests.greeting = askLlm('Generate a short greeting');
        if (declared?.roots !== undefined) inputRequests.client_roots = inputRequired.listRoots();
        return Object.keys(inputRequests).length === 0 ? text('No declared capability supports an input request') : inputRequired({ inputRequests });
    });
    // Over HTTP each request gets its own instance, so changes go on the handler's bus;
    // over stdio the one pinned instance's own notifications reach the subscriptions.
    tool('test_trigger_tool_change', 'publishes tools/list_changed', noArgs, async () => {
        if (modernHandler) modernHandler.notify.toolsChanged();
        else await server.sendToolListChanged();
        return text('tools_list_changed published');
    });
    tool('test_trigger_prompt_change', 'publishes prompts/list_changed', noArgs, async () => {
        if (modernHandler) modernHandler.notify.promptsChanged();
        else await server.sendPromptListChanged();
        return text('prompts_list_changed published');
    });

    // ----- resources -----
    const resource = (name, uri, mimeType, content) =>
        server.registerResource(name, uri, { title: name, description: name, mimeType }, async () => ({ contents: [{ uri, mimeType, ...content }] }));
    resource('static-text', 'test://static-text', 'text/plain', { text: 'This is the content of the static text resource.' });
    resource('static-binary', 'test://static-binary', 'image/png', { blob: PNG });
    resource('watched-resource', 'test://watched-resource', 'text/plain', { text: 'Watched resource content' });
    server.registerResource(
        'template',
        new ResourceTemplate('test://template/{id}/data', { list: undefined }),
        { title: 'Resource Template', description: 'parameter substitution', mimeType: 'application/json' },
        async (uri, { id }) => ({
            contents: [{ uri: uri.toString(), mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }],
        }),
    );
    server.server.setRequestHandler('resources/subscribe', async (request) => {
        log('info', `Subscribed to resource: ${request.params.uri}`);
        return {};
    });
    server.server.setRequestHandler('resources/unsubscribe', async (request) => {
        log('info', `Unsubscribed from resource: ${request.params.uri}`);
        return {};
    });
    server.server.setRequestHandler('logging/setLevel', async (request) => {
        log('info', `Log level set to: ${request.params.level}`);
        return {};
    });

    // ----- prompts -----
    const userText = (t) => ({ role: 'user', content: { type: 'text', text: t } });
    server.registerPrompt('test_simple_prompt', { title: 'Simple', description: 'no arguments' }, async () => ({
        messages: [userText('This is a simple prompt for testing.')],
    }));
    server.registerPrompt(
        'test_prompt_with_arguments',
        { title: 'With arguments', description: 'two arguments', argsSchema: z.object({ arg1: z.string(), arg2: z.string() }) },
        async ({ arg1, arg2 }) => ({ messages: [userText(`Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`)] }),
    );
    server.registerPrompt(
        'test_prompt_with_embedded_resource',
        { title: 'With resource', description: 'embeds a resource', argsSchema: z.object({ resourceUri: z.string() }) },
        async ({ resourceUri }) => ({
            messages: [
                { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
                userText('Please process the embedded resource above.'),
            ],
        }),
    );
    server.registerPrompt('test_prompt_with_image', { title: 'With image', description: 'image content' }, async () => ({
        messages: [{ role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } }, userText('Please analyze the image above.')],
    }));
    server.registerPrompt('test_input_required_result_prompt', { title: 'MRTR prompt', description: 'elicits context first' }, async (ctx) => {
        const context = acceptedContent(ctx.mcpReq.inputResponses, 'user_context')?.context;
        if (typeof context !== 'string') {
            const user_context = inputRequired.elicit({
                message: 'What context should the prompt use?',
                requestedSchema: objectSchema({ context: { type: 'string' } }, ['context']),
            });
            return inputRequired({ inputRequests: { user_context } });
        }
        return { messages: [userText(`Use the following context: ${context}`)] };
    });

    // ----- completion -----
    server.server.setRequestHandler('completion/complete', async () => ({ completion: { values: [], total: 0, hasMore: false } }));
    return server;
}

// ----- 2025-era sessions (HTTP) -----
const sessions = new Map(); // session id -> { transport, server }
const events = new Map(); // event id -> { streamId, message }

const eventStore = {
    async storeEvent(streamId, message) {
        const eventId = `${streamId}::${String(Date.now()).padStart(15, '0')}_${randomUUID()}`;
        events.set(eventId, { streamId, message });
        return eventId;
    },
    async replayEventsAfter(lastEventId, { send }) {
        const streamId = lastEventId.split('::')[0] || lastEventId;
        const later = [...events].filter(([id, e]) => e.streamId === streamId && id > lastEventId).sort(([a], [b]) => a.localeCompare(b));
        for (const [id, e] of later) if (e.message && Object.keys(e.message).length > 0) await send(id, e.message);
        return streamId;
    },
};

function jsonError(res, status, code, message) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

async function readJson(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    return raw === '' ? undefined : JSON.parse(raw);
}

async function handleLegacy(req, res, body) {
    const sessionId = req.headers['mcp-session-id'];
    const existing = sessionId ? sessions.get(sessionId) : undefined;
    if (existing) return existing.transport.handleRequest(req, res, body);
    if (sessionId) return jsonError(res, 404, -32001, 'Session not found');
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
        return req.method === 'POST' ? jsonError(res, 400, -32000, 'Bad Request: Session ID required') : jsonError(res, 400, -32000, 'Missing session ID');
    }
    const server = createServer();
    const transport = new NodeStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore,
        retryInterval: 5000,
        onsessioninitialized: (id) => sessions.set(id, { transport, server }),
    });
    transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
        server.close().catch(() => {});
    };
    await server.connect(transport);
    return transport.handleRequest(req, res, body);
}

function serveHttp(port) {
    modernHandler = createMcpHandler(() => createServer(), { onerror: (e) => console.error('modern handler:', e.message) });
    const modern = toNodeHandler(modernHandler);
    const hostAllowed = localhostHostValidation(); // DNS rebinding protection (dns-rebinding-protection)
    const httpServer = http.createServer(async (req, res) => {
        try {
            if (!hostAllowed(req, res)) return;
            if (new URL(req.url, 'http://localhost').pathname !== '/mcp') return jsonError(res, 404, -32600, 'Not found');
            let body;
            if (req.method === 'POST') {
                try {
                    body = await readJson(req);
                } catch {
                    return jsonError(res, 400, -32700, 'Parse error');
                }
            }
            const inbound = classifyInboundRequest({
                httpMethod: req.method,
                protocolVersionHeader: req.headers['mcp-protocol-version'],
                mcpMethodHeader: req.headers['mcp-method'],
                body,
            });
            if (inbound.kind !== 'legacy') return await modern(req, res, body);
            await handleLegacy(req, res, body);
        } catch (error) {
            console.error('request failed:', error);
            if (!res.headersSent) jsonError(res, 500, -32603, 'Internal server error');
        }
    });
    httpServer.listen(port, '127.0.0.1', () => console.error(`conformance server on http://127.0.0.1:${port}/mcp`));
}

const args = process.argv.slice(2);
if (args.includes('--stdio')) {
    const { serveStdio } = await import('@modelcontextprotocol/server/stdio');
    serveStdio(() => createServer());
} else {
    const i = args.indexOf('--port');
    serveHttp(Number(i >= 0 ? args[i + 1] : process.env.PORT ?? 3000));
}
