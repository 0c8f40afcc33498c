/*
 * The sandbox ("pause") process of every pod on the real-node test cluster: it holds the pod's
 * namespaces open and, as PID 1 of the pod, reaps orphaned children. It exits on SIGTERM or
 * SIGINT so that pod deletion does not wait for the runtime's kill timeout. Built statically by
 * scripts/provision/kube-node.sh, because the image holds nothing but this binary.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGTERM, &stop, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
