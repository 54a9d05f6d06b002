/**
 * The app's frame: sign-in, the navigation bar and the hash router.
 *
 * Sign-in: a URL of `muster dashboard` carries a one-time ticket in its
 * fragment (`#ticket=…`, never sent to a server); it is taken out of the
 * address bar at once and traded for the session cookie. Without one, an
 * existing session is used, else the form asks for the cluster token.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, signIn, signOut, whoami, type Who } from './api.js';
import { href, useRoute } from './live.js';
import { Overview } from './pages/overview.js';
import { NodeList, NodePage } from './pages/nodes.js';
import { PlacementGroups } from './pages/placement-groups.js';
import { GangList, GangPage } from './pages/gangs.js';
import { ReplicaGroupList, ReplicaGroupPage } from './pages/replica-groups.js';

export function App() {
  const [who, setWho] = useState<Who | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [checked, setChecked] = useState(false);
  useEffect(() => {
    const ticket = /^#ticket=([A-Za-z0-9_-]+)/.exec(location.hash)?.[1];
    if (ticket) history.replaceState(null, '', `${location.pathname}#/`);
    (ticket ? signIn({ ticket }) : whoami()).then(
      (w) => setWho(w),
      (e: ApiError) => setError(e.status === 401 ? (ticket ? e.message : undefined) : e.message),
    ).finally(() => setChecked(true));
  }, []);
  if (!checked) return <p class="muted">Connecting…</p>;
  if (!who) return <SignIn error={error} onSignedIn={setWho} />;
  return <Frame who={who} onSignOut={() => void signOut().then(() => setWho(undefined))} />;
}

function SignIn(props: { error: string | undefined; onSignedIn: (w: Who) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(props.error);
  const submit = (e: Event) => {
    e.preventDefault();
    signIn({ token: token.trim() }).then(props.onSignedIn, (err: Error) => setError(err.message));
  };
  return (
    <main class="signin">
      <h1>Muster</h1>
      <p>Run <code>muster dashboard</code> and open the link it prints, or sign in with the cluster token.</p>
      <form onSubmit={submit}>
        <input type="password" autocomplete="off" placeholder="cluster token" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} data-testid="token" />
        <button type="submit">Sign in</button>
      </form>
      {error && <p class="error" data-testid="signin-error">{error}</p>}
    </main>
  );
}

const NAV: Array<[string, string]> = [
  ['', 'Overview'],
  ['nodes', 'Nodes'],
  ['placement-groups', 'Placement groups'],
  ['gangs', 'Gangs'],
  ['replica-groups', 'Replica groups'],
];

function Frame(props: { who: Who; onSignOut: () => void }) {
  const [page = '', id] = useRoute();
  return (
    <>
      <header>
        <strong>Muster</strong>
        <nav>
          {NAV.map(([p, label]) => (
            <a href={p ? href(p) : '#/'} class={p === page ? 'active' : ''}>{label}</a>
          ))}
        </nav>
        <span class="muted who">
          {props.who.role} “{props.who.name}” <button class="link" onClick={props.onSignOut}>sign out</button>
        </span>
      </header>
      <main>{route(page, id)}</main>
    </>
  );
}

function route(page: string, id: string | undefined) {
  switch (page) {
    case '':
      return <Overview />;
    case 'nodes':
      return id ? <NodePage id={id} /> : <NodeList />;
    case 'placement-groups':
      return <PlacementGroups />;
    case 'gangs':
      return id ? <GangPage id={id} /> : <GangList />;
    case 'replica-groups':
      return id ? <ReplicaGroupPage name={id} /> : <ReplicaGroupList />;
    default:
      return <p class="error">No page “{page}”.</p>;
  }
}
