/*
 * pause: the process that holds a pod's namespaces open.
 *
 * Every pod's sandbox container runs this program as its PID 1. It must:
 *   - do nothing, forever, cheaply (pause() sleeps until a signal arrives);
 *   - reap zombies: when a pod shares its PID namespace, orphaned processes are
 *     re-parented to PID 1, and without a waitpid() loop they stay as zombies;
 *   - exit 0 on SIGTERM or SIGINT, so StopPodSandbox finishes without waiting for
 *     the runtime's kill timeout (PID 1 ignores signals it has no handler for).
 *
 * Build (static, so the image needs no libc):
 *   gcc -static -Os -o pause pause.c && strip pause
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_terminate(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	/* One SIGCHLD may stand for several exited children: reap them all. */
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(int argc, char **argv) {
	struct sigaction term, child;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("skiff pause 1.0\n");
		return 0;
	}
	if (getpid() != 1) {
		/* Still useful outside a container (tests), but say so: it is unusual. */
		fprintf(stderr, "pause: not running as pid 1\n");
	}

	memset(&term, 0, sizeof(term));
	term.sa_handler = on_terminate;
	if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0) {
		perror("pause: sigaction(SIGTERM/SIGINT)");
		return 1;
	}

	memset(&child, 0, sizeof(child));
	child.sa_handler = on_child;
	/* SA_RESTART is irrelevant to pause(); SA_NOCLDSTOP skips stop/continue noise. */
	child.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &child, NULL) < 0) {
		perror("pause: sigaction(SIGCHLD)");
		return 2;
	}

	for (;;) {
		pause();
	}
	/* not reached */
	return 42;
}
