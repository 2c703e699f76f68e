#!/usr/bin/env node
// A small kumo client in Node.js. It uses only the .proto files in
// proto/kumo/v1 (loaded at run time with @grpc/proto-loader: no generated
// code, no Python), trusts the controller's CA, logs in, and lists resources.
//
//   node client.js list   [projects|images|instances ...] all by default; prints JSON
//   node client.js unauth                                   a call with no token: prints code + ErrorInfo
//
// Settings (flag or environment):
//   --endpoint   KUMO_ENDPOINT   controller address, HOST:PORT
//   --ca-file    KUMO_CA_FILE    the controller's CA certificate (DATA_DIR/pki/ca.crt); empty: system roots
//   --user       KUMO_USER       user name or id (default admin)
//   --password   KUMO_PASSWORD   (prefer the environment: flags show in `ps`)
//   --project    KUMO_PROJECT    project name or id to scope the token to; empty: the user's default
//   --page-size  KUMO_PAGE_SIZE  items per List call; 0: the server's default
//   --proto-dir  KUMO_PROTO_DIR  the directory that holds kumo/v1/*.proto (default: this repo's proto/)
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PACKAGE = 'kumo.v1';

// grpc-js sets the TLS server name (SNI) to the target host even when it is an
// IP literal such as 127.0.0.1 (grpc/grpc-node#1919), and Node warns about
// that (DEP0123). The certificate is still checked against the address (the
// controller's certificate lists 127.0.0.1 and ::1), so drop just that warning.
const emitWarning = process.emitWarning;
process.emitWarning = function filtered(warning, ...rest) {
  const code = rest[0] && typeof rest[0] === 'object' ? rest[0].code : rest[1];
  if (code === 'DEP0123') return;
  emitWarning.call(process, warning, ...rest);
};

// What `list` lists: one line per resource. The List method is looked up in
// every kumo.v1 service of the loaded .proto files; the response field that
// holds the items is named after the resource (AIP-132). A resource whose
// method is not in the proto set is reported under "skipped", not an error.
const RESOURCES = [
  { name: 'projects', method: 'ListProjects' },
  { name: 'images', method: 'ListImages' },
  { name: 'instances', method: 'ListInstances' }, // servers (compute.proto calls them instances)
];

const LOADER_OPTIONS = {
  keepCase: true, // field names as in the .proto (snake_case), as the Python CLI prints them
  longs: String, // int64 as decimal strings, as proto3 JSON does
  enums: String, // enum value names, not numbers
  bytes: String, // base64
  defaults: true, // empty strings, zeros and false are printed, not dropped
  arrays: true,
  objects: true,
  oneofs: true,
};

// ---------------------------------------------------------------- protos

function loadProtos(protoDir) {
  const dir = path.join(protoDir, 'kumo', 'v1');
  let files;
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort();
  } catch (err) {
    throw new Error(`cannot read ${dir}: ${err.message} (set --proto-dir or KUMO_PROTO_DIR)`);
  }
  if (files.length === 0) throw new Error(`no .proto files in ${dir}`);
  // Imports are relative to protoDir ("kumo/v1/x.proto"); google/protobuf/*
  // well-known types come bundled with proto-loader (protobufjs).
  const definition = protoLoader.loadSync(
    files.map((f) => `kumo/v1/${f}`),
    { ...LOADER_OPTIONS, includeDirs: [protoDir] },
  );
  return { files, definition, ns: grpc.loadPackageDefinition(definition) };
}

// The kumo.v1 service that has `method`, or null.
function findService(protos, method) {
  for (const [name, value] of Object.entries(protos.definition)) {
    if (name.startsWith(`${PACKAGE}.`) && value && value[method] && value[method].path) {
      const ctor = name.split('.').reduce((o, part) => o && o[part], protos.ns);
      return { name, ctor, def: value[method] };
    }
  }
  return null;
}

// ---------------------------------------------------------------- proto3 JSON

// Message descriptors by full name (nested ones too: map entries live there).
function descriptorIndex(definition) {
  const index = new Map();
  const add = (fullName, desc) => {
    index.set(fullName, desc);
    for (const nested of desc.nestedType || []) add(`${fullName}.${nested.name}`, nested);
  };
  for (const [name, value] of Object.entries(definition)) {
    if (value && value.format === 'Protocol Buffer 3 DescriptorProto') add(name, value.type);
  }
  return index;
}

// A field's type name as written in the descriptor ("Project", "v1.Project",
// ".kumo.v1.Project") -> its full name, searched from the innermost scope out
// as protoc does.
function resolveType(index, scope, name) {
  if (name.startsWith('.')) return name.slice(1);
  const parts = scope.split('.');
  for (let i = parts.length; i >= 0; i -= 1) {
    const candidate = [...parts.slice(0, i), name].join('.');
    if (index.has(candidate)) return candidate;
  }
  return name;
}

function timestampJson(ts) {
  const seconds = Number(ts.seconds || 0);
  const nanos = Number(ts.nanos || 0);
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  let frac = '';
  if (nanos !== 0) {
    const digits = String(nanos).padStart(9, '0');
    frac = '.' + (nanos % 1e6 === 0 ? digits.slice(0, 3) : nanos % 1e3 === 0 ? digits.slice(0, 6) : digits);
  }
  return `${base}${frac}Z`;
}

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (t) => `google.protobuf.${t}Value`,
  ),
);

// proto-loader objects -> the proto3 JSON mapping with proto field names (MessageToDict's);
// the test converts that the Python CLI's `-o json` way (docs/cli.md) before comparing.
function toJson(index, typeName, value) {
  if (value === null || value === undefined) return undefined;
  if (typeName === 'google.protobuf.Timestamp') return timestampJson(value);
  if (typeName === 'google.protobuf.Duration') {
    const s = Number(value.seconds || 0) + Number(value.nanos || 0) / 1e9;
    return `${s}s`;
  }
  if (typeName === 'google.protobuf.FieldMask') return (value.paths || []).join(',');
  if (WRAPPERS.has(typeName)) return value.value;
  const desc = index.get(typeName);
  if (!desc) return value; // unknown: as proto-loader gave it
  const out = {};
  for (const field of desc.field || []) {
    const v = value[field.name];
    if (v === null || v === undefined) continue; // unset message / oneof member / optional
    if (field.type !== 'TYPE_MESSAGE') {
      out[field.name] = v;
      continue;
    }
    const sub = resolveType(index, typeName, field.typeName);
    const entry = index.get(sub);
    if (entry && entry.options && entry.options.mapEntry) {
      const valueField = entry.field.find((f) => f.name === 'value');
      const m = {};
      for (const [k, mv] of Object.entries(v)) {
        m[k] = valueField.type === 'TYPE_MESSAGE' ? toJson(index, resolveType(index, sub, valueField.typeName), mv) : mv;
      }
      out[field.name] = m;
    } else if (field.label === 'LABEL_REPEATED') {
      out[field.name] = v.map((item) => toJson(index, sub, item));
    } else {
      out[field.name] = toJson(index, sub, v);
    }
  }
  return out;
}

// ---------------------------------------------------------------- errors

// google.rpc.Status and ErrorInfo are not in our .proto set: they are tiny,
// so they are defined here (field numbers from google/rpc/*.proto).
const RPC_TYPES = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
  },
});
const Status = RPC_TYPES.lookupType('google.rpc.Status');
const ErrorInfo = RPC_TYPES.lookupType('google.rpc.ErrorInfo');
const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

// A grpc-js error -> {code, code_name, message, error_info}. kumo puts a
// google.rpc.Status with a google.rpc.ErrorInfo in the trailer
// `grpc-status-details-bin`; its `reason` is what a program branches on.
function describeError(err) {
  const out = { code: err.code, code_name: CODE_NAMES[err.code] || String(err.code), message: err.details };
  const raw = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (raw.length > 0) {
    const status = Status.decode(raw[0]);
    for (const any of status.details) {
      if (any.type_url.endsWith('/google.rpc.ErrorInfo')) {
        const info = ErrorInfo.toObject(ErrorInfo.decode(any.value), { defaults: true, objects: true });
        out.error_info = { reason: info.reason, domain: info.domain, metadata: info.metadata };
      } else {
        (out.other_details = out.other_details || []).push(any.type_url);
      }
    }
  }
  return out;
}

class KumoError extends Error {
  constructor(call, err) {
    const d = describeError(err);
    const reason = d.error_info ? ` [${d.error_info.reason}]` : '';
    super(`${call}: ${d.code_name}: ${d.message}${reason}`);
    this.detail = d;
  }
}

// ---------------------------------------------------------------- client

class Kumo {
  constructor({ endpoint, caFile, protoDir }) {
    if (!endpoint) throw new Error('no endpoint: set --endpoint or KUMO_ENDPOINT (HOST:PORT)');
    this.endpoint = endpoint;
    this.protos = loadProtos(protoDir);
    this.index = descriptorIndex(this.protos.definition);
    // TLS: trust the controller's own CA (DATA_DIR/pki/ca.crt); no file: the system roots.
    this.tls = grpc.credentials.createSsl(caFile ? fs.readFileSync(caFile) : null);
    this.token = '';
    this.clients = new Map();
  }

  // A stub for a service; with `auth`, every call carries `authorization: Bearer <token>`.
  stub(svc, auth = true) {
    const key = `${svc.name}:${auth}`;
    if (!this.clients.has(key)) {
      let creds = this.tls;
      if (auth) {
        const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
          const md = new grpc.Metadata();
          md.set('authorization', `Bearer ${this.token}`);
          callback(null, md);
        });
        creds = grpc.credentials.combineChannelCredentials(this.tls, bearer);
      }
      this.clients.set(key, new svc.ctor(this.endpoint, creds));
    }
    return this.clients.get(key);
  }

  call(method, request, { auth = true, timeoutMs = 30000 } = {}) {
    const svc = findService(this.protos, method);
    if (!svc) throw new Error(`no ${PACKAGE} service has ${method}`);
    const client = this.stub(svc, auth);
    return new Promise((resolve, reject) => {
      client[method](request, { deadline: new Date(Date.now() + timeoutMs) }, (err, resp) => {
        if (err) reject(new KumoError(`${svc.name}.${method}`, err));
        else resolve(resp);
      });
    });
  }

  async authenticate(user, password, project) {
    const resp = await this.call('Authenticate', { user, password, project }, { auth: false });
    this.token = resp.token;
    return toJson(this.index, 'kumo.v1.AuthenticateResponse', resp);
  }

  // Every item of a List method: follows next_page_token until it is empty.
  async listAll(method, field, pageSize = 0) {
    const items = [];
    let pageToken = '';
    let pages = 0;
    const seen = new Set();
    for (;;) {
      const resp = await this.call(method, { page_size: pageSize, page_token: pageToken });
      pages += 1;
      if (!Array.isArray(resp[field])) throw new Error(`${method} response has no repeated field ${field}`);
      items.push(...resp[field].map((item) => toJson(this.index, this.itemType(method, field), item)));
      pageToken = resp.next_page_token || '';
      if (!pageToken) break;
      if (seen.has(pageToken)) throw new Error(`${method} returned the same next_page_token twice`);
      seen.add(pageToken);
    }
    return { items, pages };
  }

  // Full name of the message type of a List response's `field`, e.g. kumo.v1.Project.
  itemType(method, field) {
    const svc = findService(this.protos, method);
    const pkg = svc.name.split('.').slice(0, -1).join('.');
    const responseName = `${pkg}.${svc.def.responseType.type.name}`;
    const itemField = this.index.get(responseName).field.find((f) => f.name === field);
    return resolveType(this.index, responseName, itemField.typeName);
  }

  close() {
    for (const c of this.clients.values()) c.close();
  }
}

// ---------------------------------------------------------------- commands

async function cmdList(kumo, opts, wanted) {
  const out = { endpoint: kumo.endpoint, proto_files: kumo.protos.files };
  const auth = await kumo.authenticate(opts.user, opts.password, opts.project);
  out.identity = auth.identity;
  out.pages = {};
  out.skipped = {};
  for (const r of RESOURCES) {
    if (wanted.length && !wanted.includes(r.name)) continue;
    if (!findService(kumo.protos, r.method)) {
      out.skipped[r.name] =
        `no ${PACKAGE} service has ${r.method} in ${kumo.protos.files.join(', ')}: this API is not in the proto set yet`;
      process.stderr.write(`skipped ${r.name}: ${out.skipped[r.name]}\n`);
      continue;
    }
    try {
      const { items, pages } = await kumo.listAll(r.method, r.name, opts.pageSize);
      out[r.name] = items;
      out.pages[r.name] = pages;
    } catch (err) {
      // In our .proto files but not served by this controller (older, or the feature is off).
      if (!(err instanceof KumoError) || err.detail.code !== grpc.status.UNIMPLEMENTED) throw err;
      out.skipped[r.name] = `the controller does not serve ${r.method}: ${err.detail.message} (UNIMPLEMENTED)`;
      process.stderr.write(`skipped ${r.name}: ${out.skipped[r.name]}\n`);
    }
  }
  return out;
}

// A call without a token: prints what a program sees (code and ErrorInfo reason).
async function cmdUnauth(kumo) {
  try {
    await kumo.call('ListProjects', {}, { auth: false });
  } catch (err) {
    if (err instanceof KumoError) return err.detail;
    throw err;
  }
  throw new Error('ListProjects without a token succeeded; expected UNAUTHENTICATED');
}

function options(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      'ca-file': { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      project: { type: 'string' },
      'page-size': { type: 'string' },
      'proto-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const env = process.env;
  return {
    help: values.help,
    command: positionals[0] || 'list',
    args: positionals.slice(1),
    endpoint: values.endpoint || env.KUMO_ENDPOINT || '',
    caFile: values['ca-file'] || env.KUMO_CA_FILE || '',
    user: values.user || env.KUMO_USER || 'admin',
    password: values.password || env.KUMO_PASSWORD || '',
    project: values.project || env.KUMO_PROJECT || '',
    pageSize: Number(values['page-size'] || env.KUMO_PAGE_SIZE || 0),
    protoDir: values['proto-dir'] || env.KUMO_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto'),
  };
}

async function main(argv) {
  const opts = options(argv);
  if (opts.help) {
    const lines = fs.readFileSync(__filename, 'utf8').split('\n').slice(1);
    const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('//')));
    process.stdout.write(header.map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    return 0;
  }
  const kumo = new Kumo(opts);
  try {
    let result;
    if (opts.command === 'list') {
      const unknown = opts.args.filter((a) => !RESOURCES.some((r) => r.name === a));
      if (unknown.length) throw new Error(`unknown resource ${unknown.join(', ')}; known: ${RESOURCES.map((r) => r.name).join(', ')}`);
      result = await cmdList(kumo, opts, opts.args);
    } else if (opts.command === 'unauth') {
      result = await cmdUnauth(kumo);
    } else {
      throw new Error(`unknown command ${opts.command}; use list or unauth`);
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } finally {
    kumo.close();
  }
}

module.exports = { Kumo, KumoError, describeError, toJson, RESOURCES };

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(1);
    },
  );
}
