/**
 * The benchmark endpoint (SPEC §9), enabled by `serve --bench` only.
 *
 * @module
 */
import type { Application } from '../../application.js';
import { JsonWebsocketConsumer } from '../../consumer/json-consumer.js';
import type { ConsumerOptions } from '../../consumer/consumer.js';
import type { JsonObject } from '../../protocol/messages.js';
import { CloseCode, CloseReason } from '../../protocol/close-codes.js';

/** The group every bench socket joins; `POST /api/publish` to it reaches them all. */
export const BENCH_GROUP = 'bench';

class BenchConsumer extends JsonWebsocketConsumer {
  override async connect(): Promise<void> {
    if (this.scope.user.isAnonymous) {
      this.close(CloseCode.Unauthorized, CloseReason.AuthenticationRequired);
      return;
    }
    await this.groupAdd(BENCH_GROUP);
    this.accept();
  }

  override receiveJson(content: JsonObject): void {
    if ('echo' in content) this.sendJson({ echo: content['echo'] });
  }
}

/**
 * `/ws/bench/`: authenticated like any socket; joins group `bench`; answers
 * `{"echo":X}` with `{"echo":X}`. Published messages arrive as the message JSON itself
 * through `websocket.send` forwarding, framed once per publish.
 */
export function benchApp(options: ConsumerOptions): Application {
  return BenchConsumer.asApp(options);
}
