// The agent's mark-clash check (src/agents/mark-clash.ts) against the real kernel: a node
// namespace of the netns cluster gets a foreign table that marks packets with bits inside the
// default mask (as Calico's accept/pass marks do) and an iptables-nft MARK rule; the check, run
// through the agent's kernel runner in that namespace, reports exactly those rules and never our
// own table, and the cluster's own CNI tables alone give no clash.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKernelRunner } from '../src/agents/kernel-exec.ts';
import { checkMarkClashes } from '../src/agents/mark-clash.ts';
import { DEFAULT_DATAPLANE_CONFIG, NFT_TABLE } from '../src/dataplane/kernel-state.ts';
import { createNetCluster, type NetCluster, type NetNode } from '../src/devenv/netcluster.ts';
import { createLogger, type Logger } from '../src/lib/log.ts';

const log = createLogger('mark-clash-test');
const own = { family: 'ip', table: NFT_TABLE };

/** The agent's start-up check on the test node, with the default mask, logging into a recorder. */
async function checkNode(node: NetNode): Promise<{ n: number; rec: ReturnType<typeof recordingLogger> }> {
  const rec = recordingLogger();
  const n = await checkMarkClashes(
    createKernelRunner(node.ns),
    DEFAULT_DATAPLANE_CONFIG.markMask,
    own,
    rec.log,
  );
  return { n, rec };
}

/** A logger that keeps what was logged at error level (the clash reports). */
function recordingLogger(): { log: Logger; errors: Record<string, unknown>[] } {
  const errors: Record<string, unknown>[] = [];
  const rec = {
    error: (fields: Record<string, unknown>) => errors.push(fields),
    warn: (fields: Record<string, unknown>, msg: string) => log.warn(fields, msg),
    info: () => undefined,
  };
  return { log: rec as unknown as Logger, errors };
}

void describe('mark clash detection in a node namespace', () => {
  let cluster: NetCluster;
  let node: NetNode;

  before(async () => {
    cluster = await createNetCluster({ nodes: 1, podNetwork: 'host-gw', log });
    node = cluster.nodes()[0]!;
  });
  after(async () => {
    await cluster?.destroy();
  });

  void it('given only the cluster CNI tables and our own, then nothing clashes', async () => {
    await cluster.exec(node.ns, ['nft', '-f', '-'], {
      check: true,
      input: `table ip ${NFT_TABLE} {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    meta mark set meta mark & 0xf000ffff | 0x00010000
  }
}
`,
    });
    const { n, rec } = await checkNode(node);
    assert.equal(n, 0, JSON.stringify(rec.errors));
  });

  void it('given a foreign table and an iptables-nft MARK rule inside the mask, then each is reported', async () => {
    await cluster.exec(node.ns, ['nft', '-f', '-'], {
      check: true,
      input: `table ip calico-like {
  chain forward {
    type filter hook forward priority filter; policy accept;
    meta mark & 0x00010000 == 0x00010000 accept
  }
}
`,
    });
    await cluster.exec(
      node.ns,
      ['iptables-nft', '-t', 'mangle', '-A', 'PREROUTING', '-j', 'MARK', '--set-xmark', '0x100000/0x100000'],
      {
        check: true,
      },
    );
    const { n, rec } = await checkNode(node);
    assert.equal(n, 2);
    assert.deepEqual(
      rec.errors.map((e) => `${String(e.table)}/${String(e.chain)} ${String(e.overlap)}`).sort(),
      ['calico-like/forward 0x00010000', 'mangle/PREROUTING undefined'],
    );
  });
});
