// Lease-based leader election (src/lib/leader-election.ts) against a real kube-apiserver: one
// leader at a time, terms that grow with every change of holder, takeover after expiry, fast
// takeover after release, a leader that steps down when somebody else writes its Lease, and terms
// that never fall when the Lease is deleted and made again (a reinstall under the same log).
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

function elector(name: string, identity: string, termFloor?: () => Promise<number>): LeaderElector {
  const e = createLeaderElector({
    kubeConfig: api.kubeConfig,
    namespace: 'default',
    name,
    identity,
    leaseDurationMs: 2_000,
    renewDeadlineMs: 1_500,
    retryPeriodMs: 200,
    ...(termFloor === undefined ? {} : { termFloor }),
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

void test('a Lease deleted and made again never restarts the count: the term floor and every count seen stay below the next term', async () => {
  const leases = api.kubeConfig.makeApiClient(CoordinationV1Api);
  let floorReads = 0;
  // The log holds term 7 of this component (as src/lib/term-floor.ts reads it); the first read fails.
  const floor = (): Promise<number> =>
    ++floorReads === 1 ? Promise.reject(new Error('broker not there yet')) : Promise.resolve(7);
  const a = elector('le-reinstall', 'a', floor);
  const leaderA = await a.acquire();
  assert.equal(leaderA.term, 8, 'a new Lease under a log at term 7 starts at 8');
  assert.equal(floorReads, 2, 'the floor is retried until it answers, then read once');
  const stored = await leases.readNamespacedLease({ name: 'le-reinstall', namespace: 'default' });
  assert.equal(stored.spec?.leaseTransitions, 8, 'the Lease records the term');

  // The Lease vanishes under a standby that had seen term 8 (the namespace deleted, say).
  const b = elector('le-reinstall', 'b');
  const bWon = b.acquire();
  await new Promise((r) => setTimeout(r, 600));
  await a.release();
  const leaderB = await bWon;
  assert.equal(leaderB.term, 9);
  await b.release();
  await leases.deleteNamespacedLease({ name: 'le-reinstall', namespace: 'default' });
  const again = await b.acquire();
  assert.equal(again.term, 10, 'b re-creates the Lease above the counts it saw, not at 0');
  assert.equal(floorReads, 2);
});
