// GraphQL beside the WebSocket (gateway/schema.graphql): queries and mutations over HTTP with the
// session cookie, subscriptions over graphql-ws. TanStack Query caches what the queries return.
import { createClient, type Client } from 'graphql-ws';

export class GraphqlError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly status: number,
  ) {
    super(message);
  }
}

interface GraphqlResponse<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function gql<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await fetch('/graphql', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401) throw new GraphqlError('signed out', 'unauthenticated', 401);
  const body = (await response.json()) as GraphqlResponse<T>;
  if (body.errors?.length) {
    const first = body.errors[0];
    throw new GraphqlError(first.message, first.extensions?.code, response.status);
  }
  if (!body.data) throw new GraphqlError('empty GraphQL response', undefined, response.status);
  return body.data;
}

let wsClient: Client | null = null;

/** The graphql-ws client (lazy: the socket opens with the first subscription). */
export function graphqlWs(): Client {
  if (!wsClient) {
    const { protocol, host } = window.location;
    wsClient = createClient({
      url: `${protocol === 'https:' ? 'wss' : 'ws'}://${host}/graphql`,
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: () => true,
    });
  }
  return wsClient;
}

/** Closes the subscription socket (sign-out): the next subscription opens a fresh one. */
export function closeGraphqlWs(): void {
  void wsClient?.dispose();
  wsClient = null;
}

/** Calls `onNext` for each result of a subscription until the returned function is called. */
export function subscribeGql<T>(
  query: string,
  variables: Record<string, unknown>,
  onNext: (data: T) => void,
): () => void {
  return graphqlWs().subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.data) onNext(result.data);
      },
      error: (error) => console.error('octo: GraphQL subscription', error),
      complete: () => undefined,
    },
  );
}

/** Whether the browser still holds valid credentials. */
export async function stillSignedIn(): Promise<boolean> {
  try {
    await gql<{ me: { id: string } }>('{ me { id } }');
    return true;
  } catch (error) {
    if (error instanceof GraphqlError && error.status === 401) return false;
    throw error;
  }
}
