// Kernel int test of the network-namespace cluster harness (src/devenv/netcluster.ts): builds real
// namespaces and checks real packet outcomes, as seen by the receiving host, in both pod-network
// modes: pods leave through their node's masquerade, pod-to-pod stays unmasqueraded, nothing
// outside the cluster routes pod CIDRs, node and pod churn, node power-off, the TCP bridge into a
// namespace, and that destroy() and the stale-run sweep leave no namespace or process behind.
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../src/devenv/artifacts.ts';
import {
  createNetCluster,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  type NetCluster,
  type PodNetwork,
  sweepStaleRuns,
} from '../src/devenv/netcluster.ts';

const node = path.join(repoRoot, 'node_modules/.bin/node');

function netnsList(): Promise<Set<string>> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'list'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(new Set(out.split('\n').map((line) => line.split(' ')[0] ?? ''))));
  });
}

/** A zombie counts as dead: its killer's orphans are reaped by whoever adopted them, in due time. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function txPackets(cluster: NetCluster, ns: string, dev: string): Promise<number> {
  const out = await cluster.exec(ns, ['ip', '-j', '-s', 'link', 'show', dev], { check: true });
  const [link] = JSON.parse(out.stdout) as [{ stats64: { tx: { packets: number } } }];
  return link.stats64.tx.packets;
}

for (const mode of ['host-gw', 'vxlan'] as const satisfies readonly PodNetwork[]) {
  void describe(`netcluster, ${mode}`, () => {
    let cluster: NetCluster;

    before(async () => {
      cluster = await createNetCluster({ nodes: 2, podNetwork: mode });
      await cluster.addPod('node1', 'pod-a');
      await cluster.addPod('node2', 'pod-b');
    });
    after(async () => {
      await cluster?.destroy();
    });

    void it('a pod reaches the external host and is seen with its node IP (CNI masquerade)', async () => {
      const a = cluster.pod('pod-a');
      const b = cluster.pod('pod-b');
      assert.equal(await cluster.whoami(a.ns, EXTERNAL_HOST_IP, { tag: 'a' }), cluster.node('node1').ip);
      assert.equal(await cluster.whoami(b.ns, EXTERNAL_OTHER_IP, { tag: 'b' }), cluster.node('node2').ip);
      const seen = await cluster.observations();
      assert.deepEqual(
        seen.map((o) => [o.tag, o.src, o.dst]),
        [
          ['a', '10.240.0.11', EXTERNAL_HOST_IP],
          ['b', '10.240.0.12', EXTERNAL_OTHER_IP],
        ],
      );
      assert.ok(seen.every((o) => o.srcPort > 0 && !Number.isNaN(Date.parse(o.time))));
    });

    void it('pod-to-pod across nodes is not masqueraded', async () => {
      const a = cluster.pod('pod-a');
      const b = cluster.pod('pod-b');
      await cluster.startWhoami(b.ns, { port: 8081 });
      const viaTunnelBefore =
        mode === 'vxlan' ? await txPackets(cluster, cluster.node('node1').ns, 'flannel.1') : 0;
      assert.equal(await cluster.whoami(a.ns, b.ip, { port: 8081 }), a.ip);
      if (mode === 'vxlan') {
        // The packets really took the overlay, not some other path.
        assert.ok((await txPackets(cluster, cluster.node('node1').ns, 'flannel.1')) > viaTunnelBefore);
      }
      const route = await cluster.exec(cluster.node('node1').ns, ['ip', 'route', 'get', b.ip], {
        check: true,
      });
      assert.match(route.stdout, mode === 'vxlan' ? /dev flannel\.1/ : /via 10\.240\.0\.12 dev eth0/);
    });

    void it('nothing outside the cluster routes pod CIDRs, and the router does not masquerade', async () => {
      const routes = await cluster.exec(cluster.router.ns, ['ip', 'route', 'show'], { check: true });
      assert.doesNotMatch(routes.stdout, /10\.244\./);
      assert.doesNotMatch(routes.stdout, /default/);
      const rules = await cluster.exec(cluster.router.ns, ['nft', 'list', 'ruleset'], { check: true });
      assert.equal(rules.stdout.trim(), '');
      const b = cluster.pod('pod-b');
      await assert.rejects(cluster.whoami(cluster.external.ns, b.ip, { port: 8081, timeoutMs: 1000 }));
    });

    void it('a node itself is seen with its own IP; the egress range is on-link at the router', async () => {
      assert.equal(await cluster.whoami(cluster.node('node2').ns, EXTERNAL_HOST_IP), '10.240.0.12');
      const route = await cluster.exec(cluster.router.ns, ['ip', 'route', 'get', '198.51.100.77'], {
        check: true,
      });
      assert.match(route.stdout, /dev br0 src 198\.51\.100\.1/);
      assert.doesNotMatch(route.stdout, / via /);
    });

    void it('pod churn: a pod re-created with another IP is reachable at the new IP', async () => {
      const a = cluster.pod('pod-a');
      const moved = await cluster.setPodIp('pod-a');
      assert.notEqual(moved.ip, a.ip);
      assert.equal(moved.node, 'node1');
      await cluster.startWhoami(moved.ns, { port: 8082 });
      const b = cluster.pod('pod-b');
      assert.equal(await cluster.whoami(b.ns, moved.ip, { port: 8082 }), b.ip);
      const pinned = await cluster.setPodIp('pod-a', '10.244.1.77');
      assert.equal(pinned.ip, '10.244.1.77');
      assert.equal(await cluster.whoami(pinned.ns, EXTERNAL_HOST_IP), '10.240.0.11');
    });

    void it('node churn: an added node joins the pod network and a removed one leaves it', async () => {
      const node3 = await cluster.addNode();
      assert.equal(node3.name, 'node3');
      const c = await cluster.addPod('node3', 'pod-c');
      assert.equal(c.ip, '10.244.3.2');
      assert.equal(await cluster.whoami(c.ns, cluster.pod('pod-b').ip, { port: 8081 }), c.ip);
      assert.equal(await cluster.whoami(c.ns, EXTERNAL_HOST_IP), node3.ip);
      await cluster.removeNode('node3');
      assert.ok(!(await netnsList()).has(node3.ns));
      assert.ok(!(await netnsList()).has(c.ns));
      const routes = await cluster.exec(cluster.node('node1').ns, ['ip', 'route', 'show'], { check: true });
      assert.doesNotMatch(routes.stdout, /10\.244\.3\./);
    });

    void it('killNode cuts the node off the fabric and reviveNode brings it back', async () => {
      const a = cluster.pod('pod-a');
      const b = cluster.pod('pod-b');
      await cluster.startWhoami(a.ns, { port: 8083 });
      assert.equal(await cluster.whoami(b.ns, a.ip, { port: 8083 }), b.ip);
      await cluster.killNode('node1');
      assert.equal(cluster.node('node1').killed, true);
      await assert.rejects(cluster.whoami(a.ns, EXTERNAL_HOST_IP, { timeoutMs: 1000 }));
      await assert.rejects(cluster.whoami(b.ns, a.ip, { port: 8083, timeoutMs: 1000 }));
      await cluster.reviveNode('node1');
      // No retry: reviveNode returns once the links carry packets again.
      assert.equal(await cluster.whoami(a.ns, EXTERNAL_HOST_IP), '10.240.0.11');
      assert.equal(await cluster.whoami(b.ns, a.ip, { port: 8083 }), b.ip);
    });

    if (mode === 'host-gw') {
      void it('an egress IP held as a /32 by a node is found by ARP and moved by gratuitous ARP', async () => {
        const egressIp = '198.51.100.50';
        const [n1, n2] = [cluster.node('node1'), cluster.node('node2')];
        const fromEgressIp = (ns: string) =>
          cluster.exec(
            ns,
            ['curl', '-sS', '-m', '2', '--interface', egressIp, `http://${EXTERNAL_HOST_IP}:8080/`],
            {
              check: true,
            },
          );
        await cluster.exec(n1.ns, ['ip', 'address', 'add', `${egressIp}/32`, 'dev', 'eth0'], { check: true });
        assert.match((await fromEgressIp(n1.ns)).stdout, /"src":"198\.51\.100\.50"/);
        const neighbour = () =>
          cluster.exec(cluster.router.ns, ['ip', 'neigh', 'show', egressIp], { check: true });
        assert.match((await neighbour()).stdout, new RegExp(n1.uplinkMac));

        await cluster.exec(n1.ns, ['ip', 'address', 'del', `${egressIp}/32`, 'dev', 'eth0'], { check: true });
        await cluster.exec(n2.ns, ['ip', 'address', 'add', `${egressIp}/32`, 'dev', 'eth0'], { check: true });
        // Unsolicited ARP replies, spread over more than the router's 1 s neighbour locktime
        // (the entry was refreshed just now, so an early one is ignored). No reply comes, so
        // arping exits non-zero: not a failure.
        await cluster.exec(n2.ns, [
          'arping',
          '-U',
          '-P',
          '-c',
          '3',
          '-W',
          '0.5',
          '-i',
          'eth0',
          '-S',
          egressIp,
          egressIp,
        ]);
        assert.match((await neighbour()).stdout, new RegExp(n2.uplinkMac));
        assert.match((await fromEgressIp(n2.ns)).stdout, /"src":"198\.51\.100\.50"/);
        await cluster.exec(n2.ns, ['ip', 'address', 'del', `${egressIp}/32`, 'dev', 'eth0'], { check: true });
      });
    }

    if (mode === 'vxlan') {
      void it('iperf3 runs across the overlay at the pod MTU', async () => {
        const b = cluster.pod('pod-b');
        await cluster.startIperf3(b.ns);
        const run = await cluster.exec(
          cluster.pod('pod-a').ns,
          ['iperf3', '-c', b.ip, '-t', '1', '-J', '--connect-timeout', '2000'],
          { check: true, timeoutMs: 15_000 },
        );
        const report = JSON.parse(run.stdout) as { end: { sum_received: { bytes: number } } };
        assert.ok(
          report.end.sum_received.bytes > 1_000_000,
          `received ${report.end.sum_received.bytes} bytes`,
        );
      });
    }
  });
}

void describe('netcluster TCP bridge into a namespace', () => {
  let cluster: NetCluster;
  let server: http.Server;
  let port: number;
  let hanging = 0;

  before(async () => {
    cluster = await createNetCluster({ nodes: 1, podNetwork: 'host-gw' });
    server = http.createServer((req, res) => {
      if (req.url === '/hang') {
        hanging++;
        return; // never answer: a long-lived relayed connection
      }
      res.end('hello from the host\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await cluster?.destroy();
    server?.closeAllConnections();
    server?.close();
  });

  void it('relays, cuts live and new connections, and restores', async () => {
    const ns = cluster.node('node1').ns;
    const curl = (urlPath: string, seconds: number) =>
      cluster.exec(ns, ['curl', '-sS', '--max-time', String(seconds), `http://127.0.0.1:${port}${urlPath}`]);
    const bridge = await cluster.bridgeTcpIntoNamespace(ns, port);
    assert.equal((await curl('/', 3)).stdout, 'hello from the host\n');

    const live = curl('/hang', 20);
    while (hanging === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const cutAt = performance.now();
    bridge.cut();
    const dropped = await live;
    assert.notEqual(dropped.code, 0);
    assert.ok(performance.now() - cutAt < 3000, 'the live connection was closed at once, not timed out');
    assert.notEqual((await curl('/', 2)).code, 0);

    bridge.restore();
    assert.equal((await curl('/', 3)).stdout, 'hello from the host\n');

    bridge.cut('blackhole');
    assert.equal((await curl('/', 1)).code, 28, 'a blackholed request times out (curl exit 28)');
    bridge.restore();
    assert.equal((await curl('/', 3)).stdout, 'hello from the host\n');

    // killNode silences the node's bridges too; reviveNode restores them.
    await cluster.killNode('node1');
    assert.equal((await curl('/', 1)).code, 28);
    await cluster.reviveNode('node1');
    assert.equal((await curl('/', 3)).stdout, 'hello from the host\n');
    await bridge.close();
    assert.ok(!existsSync(bridge.socketPath));
  });
});

void describe('netcluster teardown', () => {
  void it('destroy() removes every namespace and process of the run', async () => {
    const cluster = await createNetCluster({ nodes: 2, podNetwork: 'vxlan' });
    await cluster.addPod('node1', 'p1');
    const whoami = await cluster.startWhoami(cluster.pod('p1').ns, { port: 9000 });
    const namespaces = cluster.namespaces();
    assert.equal(namespaces.length, 5);
    assert.ok(namespaces.every((ns) => ns.startsWith(`kseip-${cluster.runId}-`)));
    await cluster.destroy();
    const left = await netnsList();
    assert.deepEqual(
      namespaces.filter((ns) => left.has(ns)),
      [],
    );
    assert.equal(alive(whoami.pid), false);
    assert.ok(!existsSync(cluster.runDir));
  });

  void it('SIGTERM to the owning process tears its clusters down', async () => {
    const script = [
      `import { createNetCluster } from ${JSON.stringify(path.join(repoRoot, 'src/devenv/netcluster.ts'))};`,
      `const c = await createNetCluster({ nodes: 1, podNetwork: 'vxlan' });`,
      `await c.addPod('node1', 'p');`,
      `console.log(JSON.stringify(c.namespaces()));`,
      `setInterval(() => {}, 1000);`,
    ].join('\n');
    const child = spawn(
      node,
      ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, LOG_LEVEL: 'warn' },
      },
    );
    const namespaces = JSON.parse(await firstLine(child)) as string[];
    assert.equal(namespaces.length, 4);
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_, signal) => resolve(signal)),
    );
    child.kill('SIGTERM');
    assert.equal(
      await exited,
      'SIGTERM',
      'the handler re-raises the signal, so the process still dies of it',
    );
    const left = await netnsList();
    assert.deepEqual(
      namespaces.filter((ns) => left.has(ns)),
      [],
    );
  });

  void it('a run whose owner died is swept: its namespaces and processes are gone', async () => {
    const script = [
      `import { createNetCluster } from ${JSON.stringify(path.join(repoRoot, 'src/devenv/netcluster.ts'))};`,
      `const c = await createNetCluster({ nodes: 1, podNetwork: 'host-gw' });`,
      `await c.addPod('node1', 'orphan');`,
      `console.log(JSON.stringify({ namespaces: c.namespaces(), ext: c.external.ns }));`,
      `setInterval(() => {}, 1000);`,
    ].join('\n');
    const child = spawn(
      node,
      ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, LOG_LEVEL: 'warn' },
      },
    );
    const line = await firstLine(child);
    const { namespaces, ext } = JSON.parse(line) as { namespaces: string[]; ext: string };
    const ownerGone = new Promise((resolve) => child.once('exit', resolve));
    const orphanPids = (await netnsPids(ext)).map(Number);
    assert.ok(orphanPids.length > 0, 'the crashed run left its whoami server behind');
    child.kill('SIGKILL'); // no exit handler runs: a crash
    await ownerGone;
    const before = await netnsList();
    assert.ok(
      namespaces.every((ns) => before.has(ns)),
      'the crash left the namespaces behind',
    );

    sweepStaleRuns();
    const after = await netnsList();
    assert.deepEqual(
      namespaces.filter((ns) => after.has(ns)),
      [],
    );
    assert.deepEqual(
      orphanPids.filter((pid) => alive(pid)),
      [],
    );
  });
});

/** PIDs living in a namespace, as `ip netns pids` reports them. */
function netnsPids(ns: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'pids', ns], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out.split('\n').filter((l) => l !== '')));
  });
}

function firstLine(child: ChildProcessByStdio<null, Readable, null>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
    });
    child.on('exit', (code) => reject(new Error(`child exited ${code} before reporting`)));
  });
}
