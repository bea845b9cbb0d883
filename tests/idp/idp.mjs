// A real OpenID provider (oidc-provider from npm) for interpose's OAuth tests.
//
// Usage: node idp.mjs [--port N] [--issuer URL] [--keys FILE] [--ttl SECONDS]
//
// Serves on 127.0.0.1 (port 0 picks one) its discovery documents, its JWKS and a token
// endpoint for the `client_credentials` grant. The clients `interpose-test` (secret
// `interpose-secret`) and `interpose-other` (`other-secret`), two parties, may ask for
// the scopes `mcp:tools mcp:read mcp:admin`; a token's `sub` is its client's id. Resource
// indicators (RFC 8707) are on: a token request with `resource=URI` gets a JWT access
// token (RS256) whose `aud` is that URI, living --ttl seconds (default 300).
//
// --issuer  the issuer identifier (default http://127.0.0.1:PORT). Another instance
//           may claim the same issuer while serving elsewhere (a forger with its own keys).
// --keys    a JWKS file with private keys: read when it exists, else a fresh RSA key is
//           made and written there. Restarting with another file rotates the keys.
//
// Prints "READY <port> <issuer>" on stdout once it accepts connections.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    issuer: { type: 'string' },
    keys: { type: 'string' },
    ttl: { type: 'string', default: '300' },
  },
});

const SCOPES = 'mcp:tools mcp:read mcp:admin';
const ttl = Number(args.ttl);

function signingKeys() {
  if (args.keys && existsSync(args.keys)) {
    return JSON.parse(readFileSync(args.keys, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  if (args.keys) writeFileSync(args.keys, JSON.stringify(jwks));
  return jwks;
}

const server = createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const issuer = args.issuer ?? `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'interpose-test',
      client_secret: 'interpose-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: SCOPES,
    },
    {
      client_id: 'interpose-other',
      client_secret: 'other-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: SCOPES,
    },
  ],
  jwks: signingKeys(),
  scopes: SCOPES.split(' '),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: SCOPES,
        audience: resource,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.on('server_error', (_ctx, error) => console.error('idp server_error:', error));

server.on('request', provider.callback());
console.log(`READY ${port} ${issuer}`);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
