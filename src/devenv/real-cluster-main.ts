// `make cluster`: starts the real-node cluster (src/devenv/real-nodes.ts), installs the project
// with `kubectl apply -k k8s/overlays/dev`, prints how to explore it, and keeps it up until
// Ctrl-C (or SIGTERM), then removes everything it started. Effectful; progress goes to stderr.
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../lib/log.ts';
import { startRealCluster } from './real-nodes.ts';

const say = (line: string): void => void process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const started = performance.now();
  say('Starting a real-node cluster: Kafka, kube-apiserver + etcd + controller-manager + scheduler,');
  say(
    '3 node containers (containerd, kubelet, kube-proxy nftables, flannel vxlan), then kubectl apply -k k8s/overlays/dev',
  );
  const cluster = await startRealCluster({
    log: createLogger('real-nodes'),
    keepRunDir: true,
    onStep: (step, ms) => say(`  ✓ ${step} (${(ms / 1000).toFixed(1)} s)`),
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('\nStopping: removing the node containers, namespaces, API server and broker ...');
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  const installStarted = performance.now();
  await cluster.install();
  say(
    `  ✓ kubectl apply -k k8s/overlays/dev, every component rolled out (${((performance.now() - installStarted) / 1000).toFixed(1)} s)`,
  );
  say(`\nReady in ${((performance.now() - started) / 1000).toFixed(0)} s.\n`);
  say(await cluster.kubectl(['get', 'nodes', '-o', 'wide']));
  say(await cluster.kubectl(['-n', 'kube-static-egress-ip', 'get', 'pods', '-o', 'wide']));
  say(`Memory: ${(await cluster.measureMemory()).summary}\n`);
  say('Explore it:');
  say(`  export KUBECONFIG=${cluster.kube.kubeconfigPath}`);
  say(`  ${cluster.kube.kubeconfigPath.replace(/kubeconfig$/, '')}  (API server logs)`);
  say(
    `  .cache/bin/kubectl get seip -A                  # the CRDs are installed; see README "The API in one minute"`,
  );
  say(`  bin/kseip events tail --brokers ${cluster.kafka.brokers[0]} --follow`);
  say(
    `  docker exec -it ${cluster.nodes()[0]!.containerId.slice(0, 12)} bash   # a node: nft list ruleset, ip rule, crictl-free: ctr -n k8s.io c ls`,
  );
  say(`  node logs: ${cluster.runDir}/nodes/<node>/logs/{kubelet,kube-proxy,flanneld,containerd}.log`);
  say(
    `  the external host's log: ip netns exec ${cluster.net.external.ns} cat ${cluster.net.runDir}/whoami.jsonl`,
  );
  say('\nCtrl-C removes everything.');
  for (;;) await sleep(60_000);
}

main().catch((err: unknown) => {
  say(`make cluster failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
