// A real, throwaway Kubernetes control plane for tests and the demo: etcd, kube-apiserver and a
// kube-controller-manager running only the controllers a cluster without kubelets or CNI needs
// (so real EndpointSlices appear for Services). Everything listens on 127.0.0.1, on free ports.
//
// Effectful. Each startApiServer() owns one temporary run dir (certificates, kubeconfig, etcd
// data, logs) and the three processes it started; stop() ends those processes by their own PIDs
// (SIGTERM, then SIGKILL) and removes the run dir. The same happens on process exit, SIGINT,
// SIGTERM and SIGHUP, and the children die with this process even if it is SIGKILLed (setpriv
// --pdeathsig). A start-up that fails throws with the reason and the last lines of the failing
// component's log; it never degrades to "skip".
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api, KubeConfig, type ApiException } from '@kubernetes/client-node';
import { requireArtifact } from './artifacts.ts';
import { runOnExit } from './exit-cleanup.ts';
import { freePorts } from './free-port.ts';

/**
 * Controllers for a cluster without kubelets: EndpointSlices for Services (and mirrored custom
 * Endpoints), namespace deletion, garbage collection by owner references, and service accounts
 * with their tokens. clusterrole-aggregation fills the aggregated `admin`/`edit`/`view` roles,
 * which are otherwise empty and would make RBAC tests that bind them fail confusingly.
 */
export const defaultControllers: readonly string[] = [
  'endpointslice-controller',
  'endpointslice-mirroring-controller',
  'namespace-controller',
  'garbage-collector-controller',
  'serviceaccount-token-controller',
  'serviceaccount-controller',
  'clusterrole-aggregation-controller',
];

export interface ApiServerOptions {
  /** kube-controller-manager's --controllers; default {@link defaultControllers}. */
  controllers?: readonly string[];
  /**
   * Resolve only once the controllers are working (the `default` ServiceAccount exists).
   * Default true; false saves about 0.3 s when a test needs the API server only.
   */
  waitForControllers?: boolean;
  /** Extra kube-apiserver flags, e.g. `--feature-gates=...`. */
  apiServerArgs?: readonly string[];
  /** Give up on start-up after this long. Default 90 s (a busy 2-core machine is slow). */
  timeoutMs?: number;
  /** Keep the run dir (logs, etcd data) after stop(); also KSEIP_KEEP_RUN_DIR=1. */
  keepRunDir?: boolean;
  /**
   * Serve real kubelets (src/devenv/real-nodes.ts), as a production control plane does: the Node
   * authorizer with NodeRestriction, ServiceAccount admission (pods get tokens), every default
   * controller of kube-controller-manager with node IPAM on `clusterCidr`, and a kube-scheduler.
   * The API server is advertised (the `kubernetes` Service's endpoint) at `advertiseAddress`,
   * where a relay reachable from the nodes forwards to the secure port, and its serving
   * certificate covers that address and the Service's cluster IP. Without this option the
   * control plane suits a cluster without kubelets ({@link defaultControllers}).
   */
  nodes?: { advertiseAddress: string; clusterCidr: string };
}

/** A client certificate signed by the test CA, as files in the run dir. */
export interface ClientCertificate {
  certFile: string;
  keyFile: string;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** How long each start-up phase took, for reporting (milliseconds). */
export interface StartupTimings {
  certs: number;
  apiServerReady: number;
  controllersReady: number;
  total: number;
}

export interface ApiServer {
  /** https://127.0.0.1:PORT */
  server: string;
  runDir: string;
  /** Admin kubeconfig (system:masters client certificate, embedded) usable by client-node and kubectl. */
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  timings: StartupTimings;
  /** Runs the kubectl built from the same Kubernetes version against this server; never throws on exit code. */
  kubectl(args: readonly string[], stdin?: string): Promise<KubectlResult>;
  /** A bound token (TokenRequest API) for ServiceAccount namespace/name, which is created if missing. */
  serviceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** The CA that signs every certificate of this control plane (and that kubelets trust). */
  caCertFile: string;
  /**
   * A certificate signed by the CA, written as `<name>.crt`/`.key` in the run dir: a client
   * certificate for user `commonName` in `organizations` (the Node authorizer's
   * system:node:<name> in system:nodes, say), or with `serverIps` a serving one for them.
   */
  issueCertificate(
    name: string,
    commonName: string,
    options?: { organizations?: readonly string[]; serverIps?: readonly string[] },
  ): Promise<ClientCertificate>;
  /** A kubeconfig for `cert` against `server` (default: this server), certificates embedded. */
  renderKubeconfig(cert: ClientCertificate, server?: string): string;
  stop(): Promise<void>;
}

interface Binaries {
  etcd: string;
  apiServer: string;
  controllerManager: string;
  scheduler: string;
  kubectl: string;
}

interface Child {
  name: string;
  proc: ChildProcess;
  logPath: string;
  /** Settles when the process has exited (or failed to spawn); never rejects. */
  exited: Promise<string>;
  hasExited: boolean;
}

const runDirPrefix = 'kseip-kube-';
const maxAttempts = 3;

export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const binDir = requireArtifact('KUBE_BIN_DIR');
  const bins: Binaries = {
    etcd: requireArtifact('ETCD_BIN'),
    apiServer: path.join(binDir, 'kube-apiserver'),
    controllerManager: path.join(binDir, 'kube-controller-manager'),
    scheduler: path.join(binDir, 'kube-scheduler'),
    kubectl: path.join(binDir, 'kubectl'),
  };
  for (const bin of [bins.etcd, bins.apiServer, bins.controllerManager, bins.scheduler, bins.kubectl]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'scripts/provision.sh kube etcd' first`);
  }
  sweepStaleRunDirs();
  // Free ports are found by binding port 0 and closing it again, so another process can take one
  // before our component binds it. That race is the only failure worth retrying.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bins, opts);
    } catch (err) {
      if (attempt >= maxAttempts || !(err instanceof PortTakenError)) throw err;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(bins: Binaries, opts: ApiServerOptions): Promise<ApiServer> {
  const started = performance.now();
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  const keep = opts.keepRunDir ?? process.env.KSEIP_KEEP_RUN_DIR === '1';
  const runDir = mkdtempSync(path.join(tmpdir(), runDirPrefix));
  const instance: Instance = { runDir, children: [], keep };
  live.add(instance);
  runOnExit(killAllNow);
  try {
    await writeFile(path.join(runDir, 'owner.pid'), String(process.pid));
    const [etcdClientPort, etcdPeerPort, securePort] = await freePorts(3);
    const server = `https://127.0.0.1:${securePort}`;
    const nodes = opts.nodes;
    const pki = await makeCertificates(runDir, nodes ? [nodes.advertiseAddress, KUBERNETES_SERVICE_IP] : []);
    const certsMs = performance.now() - started;
    const kubeconfigPath = path.join(runDir, 'kubeconfig');
    const admin = { certFile: pki.adminCert, keyFile: pki.adminKey };
    await writeFile(kubeconfigPath, renderKubeconfig(server, pki.caCert, admin), { mode: 0o600 });

    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    // kube-apiserver retries its etcd connection, so both start at once instead of one after
    // the other; a component that dies early still fails the start-up immediately.
    const etcd = spawnLogged(instance, 'etcd', bins.etcd, [
      '--name=default',
      `--data-dir=${path.join(runDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Throwaway data: durability buys nothing and fsync is most of etcd's write latency.
      '--unsafe-no-fsync',
    ]);
    const apiServer = spawnLogged(instance, 'kube-apiserver', bins.apiServer, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      `--advertise-address=${nodes?.advertiseAddress ?? '127.0.0.1'}`,
      `--secure-port=${securePort}`,
      `--cert-dir=${path.join(runDir, 'pki')}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${pki.saPublicKey}`,
      `--service-account-signing-key-file=${pki.saPrivateKey}`,
      ...(nodes
        ? ['--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction']
        : [
            '--authorization-mode=RBAC',
            // Without kube-controller-manager's help this plugin rejects pods until the
            // namespace's default ServiceAccount exists; tests create pods straight away.
            '--disable-admission-plugins=ServiceAccount',
          ]),
      '--allow-privileged=true',
      '--profiling=false',
      ...(opts.apiServerArgs ?? []),
    ]);
    await failFast(waitForReadyz(server, pki, deadline), [etcd, apiServer], 'kube-apiserver /readyz');
    const apiReadyMs = performance.now() - started;

    // Started only now: kube-controller-manager gives up if the API server is not healthy
    // within 10 s of its own start, which a loaded machine can exceed.
    const controllerManager = spawnLogged(instance, 'kube-controller-manager', bins.controllerManager, [
      `--kubeconfig=${kubeconfigPath}`,
      `--controllers=${(opts.controllers ?? (nodes ? ['*'] : defaultControllers)).join(',')}`,
      '--leader-elect=false',
      // No serving endpoint: nothing scrapes it, and it would need one more free port.
      '--secure-port=0',
      `--service-account-private-key-file=${pki.saPrivateKey}`,
      `--root-ca-file=${pki.caCert}`,
      ...(nodes
        ? [
            // Node IPAM: each node's spec.podCIDR, which flannel's kube subnet manager uses.
            '--allocate-node-cidrs=true',
            `--cluster-cidr=${nodes.clusterCidr}`,
            '--node-cidr-mask-size=24',
            `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
            `--cluster-signing-cert-file=${pki.caCert}`,
            `--cluster-signing-key-file=${pki.caKey}`,
          ]
        : []),
    ]);
    const schedulerChildren = nodes
      ? [
          spawnLogged(instance, 'kube-scheduler', bins.scheduler, [
            `--kubeconfig=${kubeconfigPath}`,
            '--leader-elect=false',
            '--secure-port=0',
          ]),
        ]
      : [];
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    if (opts.waitForControllers ?? true) {
      await failFast(
        waitForDefaultServiceAccount(kubeConfig, deadline),
        [etcd, apiServer, controllerManager, ...schedulerChildren],
        'kube-controller-manager (default ServiceAccount)',
      );
    }
    const total = performance.now() - started;
    return {
      server,
      runDir,
      kubeconfigPath,
      kubeConfig,
      timings: {
        certs: Math.round(certsMs),
        apiServerReady: Math.round(apiReadyMs),
        controllersReady: Math.round(total - apiReadyMs),
        total: Math.round(total),
      },
      kubectl: (args, stdin) => runKubectl(bins.kubectl, kubeconfigPath, runDir, args, stdin),
      serviceAccountToken: (namespace, name, expirationSeconds) =>
        requestServiceAccountToken(kubeConfig, namespace, name, expirationSeconds),
      caCertFile: pki.caCert,
      issueCertificate: (name, commonName, options = {}) => issueCertificate(pki, name, commonName, options),
      renderKubeconfig: (cert, serverUrl = server) => renderKubeconfig(serverUrl, pki.caCert, cert),
      stop: () => stopInstance(instance),
    };
  } catch (err) {
    await stopInstance(instance);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Instance {
  runDir: string;
  children: Child[];
  keep: boolean;
}

const live = new Set<Instance>();

// setpriv execs the component in place (same PID) after asking the kernel to SIGKILL it when
// this process dies, which covers the one case no exit handler can: this process being SIGKILLed.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

function spawnLogged(instance: Instance, name: string, bin: string, args: readonly string[]): Child {
  const logPath = path.join(instance.runDir, `${name}.log`);
  const fd = openSync(logPath, 'a');
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, [...args]];
  const proc = spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const child: Child = { name, proc, logPath, exited: Promise.resolve(''), hasExited: false };
  child.exited = new Promise((resolve) => {
    proc.once('error', (err) => {
      child.hasExited = true;
      resolve(`failed to start: ${err.message}`);
    });
    proc.once('exit', (code, signal) => {
      child.hasExited = true;
      resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`);
    });
  });
  instance.children.push(child);
  return child;
}

/** `work`, unless one of `children` exits first: then an error with the reason and its log tail. */
async function failFast<T>(work: Promise<T>, children: readonly Child[], what: string): Promise<T> {
  const died = children.map((c) =>
    c.exited.then(async (reason): Promise<never> => {
      const tail = await logTail(c.logPath);
      const message = `${c.name} ${reason} while waiting for ${what}; last lines of ${c.logPath}:\n${tail}`;
      throw /address already in use/i.test(tail) ? new PortTakenError(message) : new Error(message);
    }),
  );
  try {
    return await Promise.race([work, ...died]);
  } catch (err) {
    if (err instanceof TimeoutError) {
      const tails = await Promise.all(
        children.map(async (c) => `--- ${c.logPath}:\n${await logTail(c.logPath)}`),
      );
      throw new Error(`${err.message}\n${tails.join('\n')}`);
    }
    throw err;
  } finally {
    // The losers of the race settle later; mark them handled.
    for (const d of died) d.catch(() => undefined);
  }
}

class TimeoutError extends Error {}

async function logTail(file: string, lines = 25): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${String(err)})`;
  }
}

async function stopInstance(instance: Instance): Promise<void> {
  if (!live.delete(instance)) return;
  // etcd last: a kube-apiserver that loses etcd first spends its whole grace period retrying.
  const [etcd, ...rest] = instance.children;
  await Promise.all(rest.map(stopChild));
  if (etcd) await stopChild(etcd);
  if (!instance.keep) rmSync(instance.runDir, { recursive: true, force: true, maxRetries: 3 });
}

async function stopChild(child: Child): Promise<void> {
  if (child.hasExited || child.proc.pid === undefined) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 5_000);
  await child.exited;
  clearTimeout(timer);
}

/** Synchronous last-resort cleanup, for exit and signal handlers where nothing async runs. */
function killAllNow(): void {
  for (const instance of live) {
    for (const c of instance.children) if (!c.hasExited) c.proc.kill('SIGKILL');
    if (!instance.keep) rmSync(instance.runDir, { recursive: true, force: true, maxRetries: 3 });
  }
  live.clear();
}

/**
 * Removes run dirs left by processes that died without cleaning up (SIGKILL, OOM), and ends
 * their components if still alive. A PID is only signalled if its command line names that run
 * dir, so a recycled PID can never hit an unrelated process.
 */
export function sweepStaleRunDirs(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(runDirPrefix)) continue;
    const dir = path.join(tmpdir(), entry);
    let owner = NaN;
    try {
      owner = Number(readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || isAlive(owner)) continue;
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // exited meanwhile, or not readable
      }
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** A zombie (dead, not yet reaped by its parent) counts as dead: it can clean nothing up. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may itself contain ") ".
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates and kubeconfig

interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saPrivateKey: string;
  saPublicKey: string;
}

/** The API server's --service-cluster-ip-range, and the `kubernetes` Service's IP (its first). */
export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
const KUBERNETES_SERVICE_IP = '10.96.0.1';

/** ECDSA P-256 throughout: key generation is instant, where RSA costs tens of ms per key. */
async function makeCertificates(runDir: string, extraServingIps: readonly string[]): Promise<Pki> {
  const dir = path.join(runDir, 'pki');
  const f = (name: string): string => path.join(dir, name);
  const pki: Pki = {
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    servingCert: f('apiserver.crt'),
    servingKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    saPrivateKey: f('sa.key'),
    saPublicKey: f('sa.pub'),
  };
  await openssl(['version']).catch((err: unknown) => {
    throw new Error(
      `the openssl CLI is needed to make certificates (the packages step installs it): ${String(err)}`,
    );
  });
  rmSync(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  // A minimal config, so neither the machine's openssl.cnf nor its default extensions leak in.
  await writeFile(opensslConfig(pki), '[req]\ndistinguished_name = dn\n[dn]\n');
  await Promise.all([
    openssl([
      ...selfSignedRequest(pki),
      ...['-keyout', pki.caKey, '-out', pki.caCert, '-subj', '/CN=kseip-test-ca', '-days', '3650'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]),
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', pki.saPrivateKey]).then(() =>
      openssl(['ec', '-in', pki.saPrivateKey, '-pubout', '-out', pki.saPublicKey]),
    ),
  ]);
  const servingNames = ['IP:127.0.0.1', 'DNS:localhost', ...extraServingIps.map((ip) => `IP:${ip}`)];
  if (extraServingIps.length > 0) servingNames.push(...kubernetesServiceNames);
  await Promise.all([
    openssl(
      leafRequest(pki, pki.servingCert, pki.servingKey, '/CN=kube-apiserver', [
        `subjectAltName=${servingNames.join(',')}`,
        'extendedKeyUsage=serverAuth',
      ]),
    ),
    // O=system:masters: the group RBAC always allows, so the admin needs no bindings.
    openssl(
      leafRequest(pki, pki.adminCert, pki.adminKey, '/O=system:masters/CN=admin', [
        'extendedKeyUsage=clientAuth',
      ]),
    ),
  ]);
  return pki;
}

/** The names in-cluster clients use for the API server (the `kubernetes` Service). */
const kubernetesServiceNames = [
  `IP:${KUBERNETES_SERVICE_IP}`,
  'DNS:kubernetes',
  'DNS:kubernetes.default',
  'DNS:kubernetes.default.svc',
  'DNS:kubernetes.default.svc.cluster.local',
];

const opensslConfig = (pki: Pki): string => path.join(path.dirname(pki.caCert), 'openssl.cnf');

function selfSignedRequest(pki: Pki): string[] {
  return [
    'req',
    '-config',
    opensslConfig(pki),
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-noenc',
  ];
}

/** openssl arguments for a new key and a certificate for it signed by the CA. */
function leafRequest(pki: Pki, cert: string, key: string, subject: string, ext: readonly string[]): string[] {
  return [
    ...selfSignedRequest(pki),
    ...[
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      subject,
      '-days',
      '365',
      '-CA',
      pki.caCert,
      '-CAkey',
      pki.caKey,
    ],
    ...['-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature'],
    ...ext.flatMap((e) => ['-addext', e]),
  ];
}

async function issueCertificate(
  pki: Pki,
  name: string,
  commonName: string,
  options: { organizations?: readonly string[]; serverIps?: readonly string[] },
): Promise<ClientCertificate> {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name))
    throw new Error(`certificate name ${JSON.stringify(name)} is not a plain file name`);
  const dir = path.dirname(pki.caCert);
  const cert = { certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
  const subject = [...(options.organizations ?? []).map((o) => `/O=${o}`), `/CN=${commonName}`].join('');
  const ext =
    options.serverIps === undefined
      ? ['extendedKeyUsage=clientAuth']
      : [
          `subjectAltName=${options.serverIps.map((ip) => `IP:${ip}`).join(',')}`,
          'extendedKeyUsage=serverAuth',
        ];
  await openssl(leafRequest(pki, cert.certFile, cert.keyFile, subject, ext));
  return cert;
}

function openssl(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`openssl ${args.join(' ')} exited with ${code}: ${stderr}`)),
    );
  });
}

/** Certificates are embedded, so the file stays valid wherever it is copied. */
function renderKubeconfig(server: string, caCertFile: string, cert: ClientCertificate): string {
  const b64 = (file: string): string => readFileSync(file).toString('base64');
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'kseip-test', cluster: { server, 'certificate-authority-data': b64(caCertFile) } }],
      users: [
        {
          name: 'user',
          user: { 'client-certificate-data': b64(cert.certFile), 'client-key-data': b64(cert.keyFile) },
        },
      ],
      contexts: [
        { name: 'kseip-test', context: { cluster: 'kseip-test', user: 'user', namespace: 'default' } },
      ],
      'current-context': 'kseip-test',
    },
    null,
    2,
  );
}

// ---------------------------------------------------------------------------------------------
// Readiness

const pollMs = 100;

async function waitForReadyz(server: string, pki: Pki, deadline: number): Promise<void> {
  const tls = {
    ca: readFileSync(pki.caCert),
    cert: readFileSync(pki.adminCert),
    key: readFileSync(pki.adminKey),
  };
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const { status, body } = await httpsGet(`${server}/readyz?verbose`, tls);
      if (status === 200) return;
      last = `HTTP ${status}: ${body
        .split('\n')
        .filter((l) => l.includes('failed'))
        .join('; ')}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(pollMs);
  }
  throw new TimeoutError(`kube-apiserver was not ready in time (last /readyz: ${last})`);
}

function httpsGet(
  url: string,
  tls: { ca: Buffer; cert: Buffer; key: Buffer },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The serviceaccount controller creates it once its informers run: proof the controllers work. */
async function waitForDefaultServiceAccount(kubeConfig: KubeConfig, deadline: number): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let last = 'not found yet';
  while (Date.now() < deadline) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return;
    } catch (err) {
      last = String(err);
    }
    await sleep(pollMs);
  }
  throw new TimeoutError(
    `kube-controller-manager did not create the default ServiceAccount in time (${last})`,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Clients

function runKubectl(
  bin: string,
  kubeconfigPath: string,
  runDir: string,
  args: readonly string[],
  stdin?: string,
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, {
      // KUBECACHEDIR keeps kubectl's discovery cache out of ~/.kube, and per server.
      env: { ...process.env, KUBECONFIG: kubeconfigPath, KUBECACHEDIR: path.join(runDir, 'kubectl-cache') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code, signal) => resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) }));
    proc.stdin.end(stdin ?? '');
  });
}

async function requestServiceAccountToken(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
  expirationSeconds = 3600,
): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  try {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  } catch (err) {
    if ((err as ApiException<unknown>).code !== 409) throw err;
  }
  const tokenRequest = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = tokenRequest.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}
