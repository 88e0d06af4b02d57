#!/usr/bin/env node
// A Node.js client for kvgrpc that calls every RPC of kvgrpc.v1.KeyValue
// against a running server and checks the answers, including the status codes
// and the google.rpc.ErrorInfo detail of the errors.
//
// It uses no generated or copied code: @grpc/proto-loader reads
// proto/kvgrpc/v1/keyvalue.proto (found relative to this file) at run time,
// and protobufjs reads google/rpc/status.proto and error_details.proto from
// an include directory, e.g. the one the Python package
// googleapis-common-protos installs into site-packages:
//
//   node kvgrpc-client.js 127.0.0.1:50051 \
//     --googleapis-protos "$(python -c 'import google.rpc.status_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')"
//
// (or set KVGRPC_GOOGLEAPIS_PROTOS). Prints one line per check; exits 0 when
// every check passed, 1 at the first failed check, 2 on a usage error.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "proto");
const KEYVALUE_PROTO = "kvgrpc/v1/keyvalue.proto";
const ERROR_DOMAIN = "kvgrpc";
const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";
const STATUS_DETAILS_KEY = "grpc-status-details-bin";
const USAGE = "usage: node kvgrpc-client.js HOST:PORT [--googleapis-protos DIR] [--deadline-ms N]";

class UsageError extends Error {}

function parseArgs(argv) {
  const options = {
    target: undefined,
    googleapisProtos: process.env.KVGRPC_GOOGLEAPIS_PROTOS || undefined,
    deadlineMs: 5000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === "--googleapis-protos") {
      options.googleapisProtos = value();
    } else if (arg === "--deadline-ms") {
      options.deadlineMs = Number(value());
      if (!Number.isInteger(options.deadlineMs) || options.deadlineMs <= 0) {
        throw new UsageError("--deadline-ms must be a positive integer");
      }
    } else if (arg.startsWith("-")) {
      throw new UsageError(`unknown option ${arg}`);
    } else if (options.target === undefined) {
      options.target = arg;
    } else {
      throw new UsageError(`unexpected argument ${arg}`);
    }
  }
  if (!options.target) throw new UsageError("the server target HOST:PORT is required");
  if (!options.googleapisProtos) {
    throw new UsageError(
      "the include directory holding google/rpc/status.proto is required: pass --googleapis-protos DIR " +
        "or set KVGRPC_GOOGLEAPIS_PROTOS (googleapis-common-protos installs it in Python's site-packages)",
    );
  }
  for (const file of ["google/rpc/status.proto", "google/rpc/error_details.proto"]) {
    if (!fs.existsSync(path.join(options.googleapisProtos, file))) {
      throw new UsageError(`${file} not found under ${options.googleapisProtos}`);
    }
  }
  return options;
}

// google.rpc.Status and google.rpc.ErrorInfo, read from the .proto files at
// run time. google/protobuf/any.proto and duration.proto are found in the
// include directory when present, or else in protobufjs's bundled copies.
function loadErrorTypes(includeDir) {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    const candidate = path.join(includeDir, target);
    return fs.existsSync(candidate) ? candidate : protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
  return {
    Status: root.lookupType("google.rpc.Status"),
    ErrorInfo: root.lookupType("google.rpc.ErrorInfo"),
  };
}

function loadKeyValueService() {
  const definition = protoLoader.loadSync(KEYVALUE_PROTO, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names exactly as in the .proto: ttl_seconds, next_after, if_value
    longs: Number, // int64 TTLs are far below 2^53
    defaults: true, // proto3 scalars read as their defaults (inserted: false); optional fields stay absent
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).kvgrpc.v1.KeyValue;
}

let checks = 0;

function check(description, fn) {
  try {
    fn();
  } catch (err) {
    throw new CheckFailed(description, err);
  }
  checks++;
  console.log(`ok ${description}`);
}

class CheckFailed extends Error {
  constructor(description, cause) {
    // One line, even for node:assert's multi-line diffs.
    const why = String(cause && cause.message ? cause.message : cause).replace(/\s*\n\s*/g, " ");
    super(`${description}: ${why}`);
    this.description = description;
  }
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { Status, ErrorInfo } = loadErrorTypes(options.googleapisProtos);
  const KeyValue = loadKeyValueService();
  const client = new KeyValue(options.target, grpc.credentials.createInsecure());
  const called = new Set();

  // One unary call as a promise; a gRPC error rejects with the ServiceError.
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      called.add(method);
      const deadline = new Date(Date.now() + options.deadlineMs);
      client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
    });

  // A call that must succeed: a gRPC error becomes a failed check naming the RPC.
  const ok = async (method, request) => {
    try {
      return await call(method, request);
    } catch (err) {
      const code = grpc.status[err.code] || err.code;
      throw new CheckFailed(`${method} ${JSON.stringify(request.key ?? request.prefix ?? "")}`, `${code}: ${err.details}`);
    }
  };

  // A call that must fail: returns the ServiceError and its decoded ErrorInfo.
  const fails = async (method, request) => {
    let err;
    try {
      await call(method, request);
    } catch (e) {
      err = e;
    }
    if (err === undefined) throw new CheckFailed(`${method} ${JSON.stringify(request)}`, "succeeded; expected an error");
    const raw = err.metadata ? err.metadata.get(STATUS_DETAILS_KEY) : [];
    if (raw.length !== 1) {
      throw new CheckFailed(`${method} error`, `no ${STATUS_DETAILS_KEY} trailer (${grpc.status[err.code]}: ${err.details})`);
    }
    const status = Status.toObject(Status.decode(raw[0]), { defaults: true });
    const infos = status.details.filter((any) => any.type_url === ERROR_INFO_TYPE_URL);
    const info = infos.length === 1 ? ErrorInfo.toObject(ErrorInfo.decode(infos[0].value), { defaults: true }) : null;
    return { err, status, info };
  };

  const run = `node-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  const key = (name) => `${run}/${name}`;
  console.log(`# target ${options.target}, key prefix ${run}/`);

  // The contract itself, as loaded at run time.
  const rpcs = Object.keys(KeyValue.service);
  check("keyvalue.proto loaded at run time declares the 10 RPCs of kvgrpc.v1.KeyValue", () =>
    assert.deepEqual(rpcs, [
      "Get", "Set", "SetIfNotExists", "Delete", "DeleteIfValueMatches", "Exists", "ListKeys", "GetTtl", "Expire",
      "Batch",
    ]),
  );

  // Set / Get: bytes round-trip exactly, including an empty value.
  const binary = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x6b, 0x76]);
  await ok("Set", { key: key("bytes"), value: binary });
  const got = await ok("Get", { key: key("bytes") });
  check("Set then Get returns the same bytes", () => assert.ok(Buffer.from(got.value).equals(binary)));
  await ok("Set", { key: key("empty"), value: Buffer.alloc(0) });
  const empty = await ok("Get", { key: key("empty") });
  check("Get of a key set to an empty value returns empty bytes", () => assert.equal(empty.value.length, 0));
  await ok("Set", { key: key("bytes"), value: Buffer.from("replaced") });
  const replaced = await ok("Get", { key: key("bytes") });
  check("Set replaces an existing value", () => assert.equal(Buffer.from(replaced.value).toString(), "replaced"));

  // Exists.
  const present = await ok("Exists", { key: key("bytes") });
  const absent = await ok("Exists", { key: key("never-set") });
  check("Exists is true for a set key and false for a missing one", () => {
    assert.equal(present.exists, true);
    assert.equal(absent.exists, false);
  });

  // SetIfNotExists.
  const first = await ok("SetIfNotExists", { key: key("lock"), value: Buffer.from("worker-a"), ttl_seconds: 60 });
  const second = await ok("SetIfNotExists", { key: key("lock"), value: Buffer.from("worker-b") });
  const holder = await ok("Get", { key: key("lock") });
  check("SetIfNotExists inserts once, then reports inserted=false and leaves the value", () => {
    assert.equal(first.inserted, true);
    assert.equal(second.inserted, false);
    assert.equal(Buffer.from(holder.value).toString(), "worker-a");
  });

  // DeleteIfValueMatches.
  const wrong = await ok("DeleteIfValueMatches", { key: key("lock"), value: Buffer.from("worker-b") });
  const still = await ok("Exists", { key: key("lock") });
  const right = await ok("DeleteIfValueMatches", { key: key("lock"), value: Buffer.from("worker-a") });
  const gone = await ok("Exists", { key: key("lock") });
  const missing = await ok("DeleteIfValueMatches", { key: key("lock"), value: Buffer.from("worker-a") });
  check("DeleteIfValueMatches removes only a key holding that value", () => {
    assert.equal(wrong.deleted, false);
    assert.equal(still.exists, true);
    assert.equal(right.deleted, true);
    assert.equal(gone.exists, false);
    assert.equal(missing.deleted, false);
  });

  // Delete.
  await ok("Delete", { key: key("empty") });
  const deleted = await ok("Exists", { key: key("empty") });
  check("Delete removes a key", () => assert.equal(deleted.exists, false));
  const deleteAgain = await fails("Delete", { key: key("empty") });
  check("Delete of a missing key fails with NOT_FOUND, ErrorInfo reason KEY_NOT_FOUND", () => {
    assert.equal(deleteAgain.err.code, grpc.status.NOT_FOUND);
    assert.equal(deleteAgain.info && deleteAgain.info.reason, "KEY_NOT_FOUND");
  });

  // ListKeys, paged with limit and after=next_after.
  const listed = ["a", "b", "c", "d", "e"].map((n) => key(`list/${n}`));
  for (const k of [...listed].reverse()) await ok("Set", { key: k, value: Buffer.from(k) });
  const pages = [];
  let after;
  do {
    const request = { prefix: key("list/"), limit: 2, ...(after === undefined ? {} : { after }) };
    const page = await ok("ListKeys", request);
    pages.push(page.keys);
    after = page.next_after;
    if (pages.length > 10) break;
  } while (after !== undefined && after !== null);
  check("ListKeys pages with limit=2 and next_after: [2, 2, 1] keys in code point order, then no next_after", () => {
    assert.deepEqual(pages, [listed.slice(0, 2), listed.slice(2, 4), listed.slice(4)]);
  });
  const all = await ok("ListKeys", { prefix: key("list/") });
  check("ListKeys with the default limit returns every key under the prefix and no next_after", () => {
    assert.deepEqual(all.keys, listed);
    assert.equal(all.next_after, undefined);
  });
  const mid = await ok("ListKeys", { prefix: key("list/"), after: listed[2], limit: 10 });
  check("ListKeys returns only keys strictly after `after`", () => assert.deepEqual(mid.keys, listed.slice(3)));

  // GetTtl and Expire, with and without if_value.
  const lease = key("lease");
  await ok("Set", { key: lease, value: Buffer.from("mine") });
  const noTtl = await ok("GetTtl", { key: lease });
  check("GetTtl of a key set without a TTL has no ttl_seconds", () => assert.equal(noTtl.ttl_seconds, undefined));
  await ok("Set", { key: key("short"), value: Buffer.from("x"), ttl_seconds: 60 });
  const setTtl = await ok("GetTtl", { key: key("short") });
  check("GetTtl of a key set with ttl_seconds=60 is 1..60", () => {
    assert.ok(setTtl.ttl_seconds >= 1 && setTtl.ttl_seconds <= 60, `got ${setTtl.ttl_seconds}`);
  });
  const expired = await ok("Expire", { key: lease, ttl_seconds: 100 });
  const ttl100 = await ok("GetTtl", { key: lease });
  check("Expire without if_value sets the TTL (updated=true, GetTtl 1..100)", () => {
    assert.equal(expired.updated, true);
    assert.ok(ttl100.ttl_seconds >= 1 && ttl100.ttl_seconds <= 100, `got ${ttl100.ttl_seconds}`);
  });
  const notMine = await ok("Expire", { key: lease, ttl_seconds: 300, if_value: Buffer.from("theirs") });
  const unchanged = await ok("GetTtl", { key: lease });
  check("Expire with a non-matching if_value changes nothing (updated=false)", () => {
    assert.equal(notMine.updated, false);
    assert.ok(unchanged.ttl_seconds <= 100, `got ${unchanged.ttl_seconds}`);
  });
  const mine = await ok("Expire", { key: lease, ttl_seconds: 300, if_value: Buffer.from("mine") });
  const ttl300 = await ok("GetTtl", { key: lease });
  check("Expire with the matching if_value renews the TTL (updated=true, GetTtl 201..300)", () => {
    assert.equal(mine.updated, true);
    assert.ok(ttl300.ttl_seconds > 200 && ttl300.ttl_seconds <= 300, `got ${ttl300.ttl_seconds}`);
  });
  const persisted = await ok("Expire", { key: lease, if_value: Buffer.from("mine") });
  const persistent = await ok("GetTtl", { key: lease });
  check("Expire without ttl_seconds removes the expiry (GetTtl has no ttl_seconds)", () => {
    assert.equal(persisted.updated, true);
    assert.equal(persistent.ttl_seconds, undefined);
  });
  const expireMissing = await ok("Expire", { key: key("never-set"), ttl_seconds: 10 });
  check("Expire of a missing key reports updated=false", () => assert.equal(expireMissing.updated, false));

  // Batch: one call, one result (or error) per operation, in order.
  const batch = await ok("Batch", {
    operations: [
      { set: { key: key("batched"), value: Buffer.from("b") } },
      { get: { key: key("batched") } },
      { get: { key: key("never-set") } },
    ],
  });
  check("Batch answers each operation in order, a failed one with its own NOT_FOUND error", () => {
    assert.deepEqual(batch.results.map((r) => r.result), ["set", "get", "error"]);
    assert.equal(Buffer.from(batch.results[1].get.value).toString(), "b");
    assert.equal(batch.results[2].error.code, grpc.status.NOT_FOUND);
    assert.equal(batch.results[2].error.reason, "KEY_NOT_FOUND");
  });

  // Errors: status code plus the google.rpc.ErrorInfo detail.
  const notFound = await fails("Get", { key: key("never-set") });
  check("Get of a missing key fails with NOT_FOUND", () => assert.equal(notFound.err.code, grpc.status.NOT_FOUND));
  check("NOT_FOUND carries google.rpc.Status with the same code and an ErrorInfo detail", () => {
    assert.equal(notFound.status.code, grpc.status.NOT_FOUND);
    assert.ok(notFound.info, `details: ${JSON.stringify(notFound.status.details.map((d) => d.type_url))}`);
  });
  check('NOT_FOUND ErrorInfo: reason "KEY_NOT_FOUND", domain "kvgrpc", metadata key', () => {
    assert.equal(notFound.info.reason, "KEY_NOT_FOUND");
    assert.equal(notFound.info.domain, ERROR_DOMAIN);
    assert.equal(notFound.info.metadata.key, key("never-set"));
  });
  const ttlNotFound = await fails("GetTtl", { key: key("never-set") });
  check("GetTtl of a missing key fails with NOT_FOUND, ErrorInfo reason KEY_NOT_FOUND", () => {
    assert.equal(ttlNotFound.err.code, grpc.status.NOT_FOUND);
    assert.equal(ttlNotFound.info && ttlNotFound.info.reason, "KEY_NOT_FOUND");
  });
  const invalid = await fails("Set", { key: "", value: Buffer.from("x") });
  check("Set with an empty key fails with INVALID_ARGUMENT", () => {
    assert.equal(invalid.err.code, grpc.status.INVALID_ARGUMENT);
  });
  check('INVALID_ARGUMENT ErrorInfo: reason "INVALID_KEY", domain "kvgrpc", metadata field "key"', () => {
    assert.ok(invalid.info, "no ErrorInfo detail");
    assert.equal(invalid.status.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(invalid.info.reason, "INVALID_KEY");
    assert.equal(invalid.info.domain, ERROR_DOMAIN);
    assert.equal(invalid.info.metadata.field, "key");
  });
  const invalidGet = await fails("Get", { key: "" });
  check("Get with an empty key fails with INVALID_ARGUMENT, ErrorInfo reason INVALID_KEY", () => {
    assert.equal(invalidGet.err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(invalidGet.info && invalidGet.info.reason, "INVALID_KEY");
  });

  // Clean up this run's keys, then make sure nothing was left out.
  const leftover = await ok("ListKeys", { prefix: `${run}/`, limit: 1000 });
  for (const k of leftover.keys) await ok("Delete", { key: k });
  const after_cleanup = await ok("ListKeys", { prefix: `${run}/` });
  check("Delete of every key of this run leaves none under its prefix", () => assert.deepEqual(after_cleanup.keys, []));
  check("every RPC of kvgrpc.v1.KeyValue was called", () => assert.deepEqual([...called].sort(), [...rpcs].sort()));

  client.close();
  console.log(`all ${checks} checks passed`);
}

main().then(
  () => process.exit(0),
  (err) => {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n${USAGE}`);
      process.exit(2);
    }
    console.log(`FAIL ${err instanceof CheckFailed ? err.message : err.stack || err}`);
    console.error(`kvgrpc node client: FAILED after ${checks} passing checks`);
    process.exit(1);
  },
);
