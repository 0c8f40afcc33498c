// Lease-based leader election (src/lib/leader-election.ts) against a real kube-apiserver: one
// leader at a time, terms that grow with every change of holder, takeover after expiry, fast
// takeover after release, and a leader that steps down when somebody else writes its Lease.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api, V1MicroTime } from '@kubernetes/client-node';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { createLeaderElector, type LeaderElector } from '../src/lib/leader-election.ts';

let api: ApiServer;
const electors: LeaderElector[] = [];

before(async () => {
  api = await startApiServer({ waitForControllers: false });
});

after(async () => {
  for (const e of electors) await e.release();
  await api?.stop();
});

function elector(name: string, identity: string): LeaderElector {
  const e = createLeaderElector({
    kubeConfig: api.kubeConfig,
    namespace: 'default',
    name,
    identity,
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_500,
    retryPeriodMs: 200,
  });
  electors.push(e);
  return e;
}

void test('one leader at a time; release hands over at once with a higher term', async () => {
  const a = elector('le-release', 'a');
  const b = elector('le-release', 'b');
  const leaderA = await a.acquire();
  assert.equal(leaderA.term, 0);
  const bWon = b.acquire();
  let bLeads = false;
  void bWon.then(() => (bLeads = true));
  // Several renewals of A pass while B keeps standing by.
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(bLeads, false, 'b must not lead while a renews');
  assert.equal(leaderA.signal.aborted, false);
  await a.release();
  assert.equal(await leaderA.lost, 'released');
  const leaderB = await bWon;
  assert.equal(leaderB.term, 1);
});

void test('a holder that stops renewing is replaced after the lease duration', async () => {
  const leases = api.kubeConfig.makeApiClient(CoordinationV1Api);
  const now = new V1MicroTime();
  await leases.createNamespacedLease({
    namespace: 'default',
    body: {
      metadata: { name: 'le-expiry', namespace: 'default' },
      spec: {
        holderIdentity: 'dead',
        leaseDurationSeconds: 2,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 4,
      },
    },
  });
  const c = elector('le-expiry', 'c');
  const leader = await c.acquire();
  assert.equal(leader.term, 5);
  const lease = await leases.readNamespacedLease({ name: 'le-expiry', namespace: 'default' });
  assert.equal(lease.spec?.holderIdentity, 'c');
});

void test('a leader whose lease is written by someone else steps down', async () => {
  const d = elector('le-conflict', 'd');
  const leader = await d.acquire();
  const leases = api.kubeConfig.makeApiClient(CoordinationV1Api);
  const lease = await leases.readNamespacedLease({ name: 'le-conflict', namespace: 'default' });
  await leases.replaceNamespacedLease({
    name: 'le-conflict',
    namespace: 'default',
    body: { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: new V1MicroTime() } },
  });
  const reason = await leader.lost;
  assert.match(reason, /intruder|409/);
  assert.equal(leader.signal.aborted, true);
});
