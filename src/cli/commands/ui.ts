import { Command } from 'commander';
import { faultPoint } from '../../store/core/index.js';
import { runCommand } from '../context.js';
import { LOOPBACK, parseListen } from '../listen.js';
import { openBrowser } from '../open-browser.js';

export const UI_PORT = 8411;

interface UiOptions {
  listen?: string;
  allowRemote?: boolean;
  open?: boolean;
}

export const uiCommand = () =>
  new Command('ui')
    .description('serve a web page of the store (forest, space, savings, drift, open images) until SIGINT/SIGTERM; it only reads')
    .option('--listen <host:port>', `listen on TCP (default 127.0.0.1:${UI_PORT}; port 0 picks a free one)`)
    .option('--allow-remote', 'allow --listen on an address other than loopback')
    .option('--open', 'open the page in the default browser, where there is one')
    .action(async (o: UiOptions, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const listen = parseListen(o.listen ?? `127.0.0.1:${UI_PORT}`, !!o.allowRemote, "show the store's page to the network");
          if (!LOOPBACK.test(listen.host)) ctx.warn(`the page is served on ${listen.host}, reachable beyond this machine, without authentication`);
          const [{ startUiServer }, { openStoreForPage }] = await Promise.all([import('../../ui/server.js'), import('../../ui/open.js')]);
          // Read-only: the page never changes the store, and runs beside any other strata process.
          const store = await openStoreForPage(ctx.storeDir);
          try {
            const server = await startUiServer({
              store,
              host: listen.host,
              port: listen.port,
              allowRemote: !!o.allowRemote,
              onError: (e) => ctx.logger.error({ err: e }, 'ui request failed'),
            });
            // Listen for the stop signals before saying anything: whoever reads the address (or the
            // browser line) may stop the page at once, and a signal with no listener kills the process.
            const stopped = new Promise<string>((resolve) => {
              process.once('SIGINT', () => resolve('SIGINT'));
              process.once('SIGTERM', () => resolve('SIGTERM'));
            });
            process.stdout.write(ctx.json ? JSON.stringify({ address: server.url, store: store.dir }) + '\n' : `serving the page of ${store.dir} on ${server.url}\n`);
            ctx.logger.info({ address: server.url }, 'ui server listening');
            if (o.open) {
              const why = await openBrowser(server.url);
              if (why) process.stderr.write(`strata: could not open a browser (${why}); open ${server.url} yourself\n`);
            }
            faultPoint('ui.after-announce');
            const signal = await stopped;
            ctx.logger.info({ signal }, 'stopping the ui server');
            await server.close();
          } finally {
            store.close();
          }
          return undefined;
        },
        () => undefined,
      ),
    );
