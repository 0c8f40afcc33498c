// Rendezvous (highest-random-weight) hashing for gateway choice. Pure and platform-independent:
// 32-bit integer arithmetic only (Math.imul, >>>), no Math.random, no iteration order.
//
// Every (egress IP, node) pair gets a score; an egress IP's ranking is its eligible nodes by
// descending score. Properties this buys:
// - Stability: a node's score for an IP does not depend on any other node, so adding, removing
//   or changing a node moves only the IPs for which that node is (or was) in the top k.
// - Spread: for m IPs and n nodes each node leads ~m/n of them (see the benchmark's figures).
// - Incremental: a node joining needs one score per IP; only a leaving top-k node needs a scan.
//
// score(ip, node) = fmix32(fnv1a32(ip) XOR fmix32(fnv1a32(node))). fmix32 (MurmurHash3's
// finalizer) is a bijection with full avalanche, so for one IP the scores of nodes with distinct
// hashes are distinct, and different IPs order the nodes independently. Both string hashes are
// computed once per IP and node, which keeps a score at a few nanoseconds. Ties (two node names
// with equal FNV-1a hashes) are broken by the lexicographically smaller node name.

/** FNV-1a over UTF-16 code units (names are ASCII in practice), 32-bit. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finalizer. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Per-node part of the score, computed once per node name. */
export function nodeHash(node: string): number {
  return fmix32(fnv1a32(node));
}

/** Per-IP part of the score, computed once per egress IP. */
export function ipHash(egressIP: string): number {
  return fnv1a32(egressIP);
}

export function score(ipH: number, nodeH: number): number {
  return fmix32(ipH ^ nodeH);
}

/** True when node a (score sa) ranks before node b (score sb). */
export function ranksBefore(sa: number, a: string, sb: number, b: string): boolean {
  return sa > sb || (sa === sb && a < b);
}

/** The top k of `nodes` for one IP: the reference (non-incremental) ranking. */
export function computeRanking(
  ipH: number,
  nodes: Iterable<string>,
  k: number,
  hashOf: (node: string) => number,
): string[] {
  const top: { node: string; s: number }[] = [];
  for (const node of nodes) {
    const s = score(ipH, hashOf(node));
    let i = top.length;
    while (
      i > 0 &&
      ranksBefore(s, node, (top[i - 1] as { s: number }).s, (top[i - 1] as { node: string }).node)
    )
      i--;
    if (i < k) {
      top.splice(i, 0, { node, s });
      if (top.length > k) top.pop();
    }
  }
  return top.map((t) => t.node);
}
