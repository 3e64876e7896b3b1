import { Component, type ReactNode } from 'react';

/** One per feature: a bug in one panel shows there and leaves the rest of the app working. */
export class ErrorBoundary extends Component<{ name: string; children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  componentDidCatch(error: Error) {
    console.error(`octo: ${this.props.name} failed`, error);
  }

  render() {
    if (this.state.error) {
      return (
        <div className="panel-error" role="alert">
          <strong>{this.props.name} failed.</strong> {this.state.error.message}{' '}
          <button onClick={() => this.setState({ error: null })}>Try again</button>
        </div>
      );
    }
    return this.props.children;
  }
}
